"""Every store call as a span, ``store <method>``, whatever the backend: one wrapper.

``traced(store)`` gives a ``Store`` whose every public method hands the call to ``store``
unchanged; a coroutine method does it inside ``payswitch.tracing.child``, so a call made in a
recorded trace (an authorization's claim, intent, record) is a span, and a call outside one
(the SAF worker, the registry refresh) costs a flag test. The class is built from ``Store``'s
own method list, so a method added to the interface is traced without a change here, and the
wrapper is a full ``Store`` (nothing abstract left). Attributes that are not the interface's
(a backend's own) are read through.

The switch wraps its store only when tracing is on (``switch.app.main``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

from payswitch import tracing
from switch.store.base import Store


def _traced(name: str) -> Callable[..., Any]:
    span = f"store {name}"

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        with tracing.child(span):
            return await getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def _plain(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def _init(self: Any, inner: Store) -> None:
    self._inner = inner


def _getattr(self: Any, name: str) -> Any:
    if name == "_inner":  # not yet set: never recurse
        raise AttributeError(name)
    return getattr(self._inner, name)


def _build() -> type[Store]:
    namespace: dict[str, Any] = {
        "__doc__": "A Store whose calls are spans (switch.store.traced).",
        "__init__": _init,
        "__getattr__": _getattr,
    }
    for name, value in inspect.getmembers(Store):
        if name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(value):
            namespace[name] = _traced(name)
        elif inspect.isfunction(value):
            namespace[name] = _plain(name)
    return cast(type[Store], type("TracedStore", (Store,), namespace))


TracedStore = _build()


def traced(store: Store) -> Store:
    """``store`` with its calls as spans."""
    make: Callable[[Store], Store] = cast(Any, TracedStore)
    return make(store)
