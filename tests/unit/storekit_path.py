"""``tests/store/storekit.new_tx`` for unit tests (one factory of valid transactions)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))

from storekit import new_tx

__all__ = ["new_tx"]
