"""The store's interface is whole: every method of ``Store`` is abstract but the few written
once on top of the others, and a backend that lacks one fails at construction."""

from __future__ import annotations

import inspect

import pytest

from switch.store.base import Store
from switch.store.cassandra.store import CassandraStore
from switch.store.sqlite.store import SqliteStore

# Written once in ``Store`` from the abstract primitives (backends may override them).
DEFAULTS = {"transition", "typed_transition", "receive_with_intent", "record_with_answer"}


def _public_methods(cls: type) -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_store_method_is_abstract_or_a_named_default():
    public = _public_methods(Store)
    assert public - DEFAULTS == set(Store.__abstractmethods__)
    assert DEFAULTS <= public


@pytest.mark.parametrize("backend", [SqliteStore, CassandraStore])
def test_backends_implement_every_method(backend: type) -> None:
    assert not backend.__abstractmethods__


def test_a_backend_missing_a_method_fails_at_construction():
    async def stub(self, *args, **kwargs):
        return None

    for missing in sorted(Store.__abstractmethods__):
        methods = {name: stub for name in Store.__abstractmethods__ if name != missing}
        one_short = type("OneShort", (Store,), methods)
        with pytest.raises(TypeError, match=missing):
            one_short()
    whole = type("Whole", (Store,), dict.fromkeys(Store.__abstractmethods__, stub))
    assert isinstance(whole(), Store)
