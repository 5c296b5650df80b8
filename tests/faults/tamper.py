"""Run a module with faults a host or its disk would add: ``python -m tests.faults.tamper
[--skew SECONDS] [--slow-store FLAG_FILE] MODULE ARGS...``. The harness starts switch processes
this way; a test facility only.

``--skew``: ``time.time`` and ``time.time_ns`` are replaced before the module is imported, so
every ``time.time()`` the process makes (idempotency and SAF timestamps, leases, the Cassandra
driver's write timestamps) is off by SECONDS, as on a host whose NTP drifted; ``datetime.now``
reads the C clock and is not skewed, and the monotonic clock is left alone, as NTP leaves it.
gRPC's own conversions keep the real clock (``_real_clock_for_grpc``): deadlines are relative
on the wire, so a drifted host's gRPC is not off, and only a Python-level skew would make it so.

``--slow-store``: ``switch.store.open_store`` gives a store whose every call first waits the
milliseconds written in FLAG_FILE while that file exists (the harness writes it to make the
store slow and deletes it to end that): a store on a saturated disk or a busy cluster, every
backend alike. The file is looked at no more than every 50 ms.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import runpy
import sys
import time
from collections.abc import Callable
from typing import Any

CHECK_EVERY_S = 0.05


def skew(seconds: float) -> None:
    real_time, real_time_ns = time.time, time.time_ns
    offset_ns = int(seconds * 1e9)

    def skewed_time() -> float:
        return real_time() + seconds

    def skewed_time_ns() -> int:
        return real_time_ns() + offset_ns

    time.time = skewed_time
    time.time_ns = skewed_time_ns
    _real_clock_for_grpc(real_time, real_time_ns)


def _real_clock_for_grpc(real_time: Callable[[], float], real_time_ns: Callable[[], int]) -> None:
    """gRPC turns deadlines between its C core's clock (which the skew cannot reach) and
    Python's ``time.time()`` (its aio channel's ``time.time() + timeout``, its Cython layer's
    ``time_remaining``): with only the latter skewed, every request would reach the switch with
    its time remaining short by the skew (a 2 s deadline arriving with ~0 s left) and every call
    it makes would carry a deadline off by it (with -2 s, dead on arrival). On a real host both
    clocks drift together and deadlines are relative on the wire, so gRPC is given the real
    clock: its modules' ``time`` is a copy of the module with the real ``time``/``time_ns``."""
    import types

    import grpc
    import grpc.aio
    from grpc._cython import cygrpc

    real = types.ModuleType("time")
    real.__dict__.update(vars(time))
    real.time, real.time_ns = real_time, real_time_ns  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):
        if (name == "grpc" or name.startswith("grpc.")) and getattr(module, "time", None) is time:
            module.time = real  # type: ignore[attr-defined]
    cygrpc.time = real  # type: ignore[attr-defined]
    assert grpc.aio is not None


class _Delay:
    """The delay FLAG_FILE asks for (0 without the file), re-read at most every 50 ms."""

    def __init__(self, flag: str) -> None:
        self.flag, self.ms, self.checked = flag, 0.0, 0.0

    def seconds(self) -> float:
        now = time.monotonic()
        if now - self.checked >= CHECK_EVERY_S:
            self.checked = now
            try:
                with open(self.flag) as f:
                    self.ms = float(f.read().strip() or 0)
            except (OSError, ValueError):
                self.ms = 0.0
        return self.ms / 1000


def slow_store(flag: str) -> None:
    import switch.store as stores
    from switch.store.base import Store

    delay, real_open = _Delay(flag), stores.open_store

    def slowed(name: str) -> Callable[..., Any]:
        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            wait = delay.seconds()
            if wait:
                await asyncio.sleep(wait)
            return await getattr(self._inner, name)(*args, **kwargs)

        return method

    def plain(name: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self._inner, name)(*args, **kwargs)

        return method

    def attribute(self: Any, name: str) -> Any:  # a backend's own attributes, read through
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    # As switch.store.traced builds its wrapper: every method of the interface delegates.
    namespace: dict[str, Any] = {
        "__init__": lambda self, inner: setattr(self, "_inner", inner),
        "__getattr__": attribute,
    }
    for name, value in inspect.getmembers(Store):
        if name.startswith("_"):
            continue
        if inspect.iscoroutinefunction(value):
            namespace[name] = slowed(name)
        elif inspect.isfunction(value):
            namespace[name] = plain(name)
    slow = type("SlowStore", (Store,), namespace)

    def open_store(url: str) -> Any:
        return slow(real_open(url))

    stores.open_store = open_store


def main() -> None:
    argv = sys.argv[1:]
    options: dict[str, str] = {}
    while argv and argv[0] in ("--skew", "--slow-store"):  # ours, before the module's name
        options[argv[0]] = argv[1]
        argv = argv[2:]
    if not argv:
        raise SystemExit(__doc__)
    if float(options.get("--skew", 0)):
        skew(float(options["--skew"]))
    if options.get("--slow-store"):
        slow_store(options["--slow-store"])
    module, *rest = argv
    code = importlib.import_module(module)  # imported (warm) before a held start's go
    from payswitch import startgate

    startgate.wait_for_go()
    sys.argv = [module, *rest]
    if callable(getattr(code, "main", None)):
        code.main()  # what its console script runs (``python -m`` runs the same)
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
