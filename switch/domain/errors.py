"""The errors of the switch's state: what a store raises, whatever the backend.

Every backend error other than the ones named here surfaces as ``StoreUnavailable``, so that
callers fail closed.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of store errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or did not answer: callers fail closed."""


class NotFound(StoreError):
    pass
