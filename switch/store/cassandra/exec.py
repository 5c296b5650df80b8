"""cassandra-driver requests awaited from asyncio, and what their errors mean for a CAS.

The driver does its I/O on its own thread (libev reactor). ``execute`` hands a request to it
and returns an asyncio future that the driver's callback completes through
``loop.call_soon_threadsafe``, so the event loop never blocks on the driver. (The driver's own
asyncio reactor runs a second loop in a thread and is marked experimental.)

A cancelled awaiter does not cancel the request: a write, once sent, runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar

from cassandra import (
    OperationTimedOut,
    ReadFailure,
    ReadTimeout,
    WriteFailure,
    WriteTimeout,
)
from cassandra.cluster import EXEC_PROFILE_DEFAULT, NoHostAvailable, Session
from cassandra.connection import ConnectionException
from cassandra.protocol import ErrorMessage
from cassandra.query import BatchStatement, BatchType

from switch.domain.errors import StoreUnavailable
from switch.store import statements
from switch.store.cassandra.cql import Statements

_log = logging.getLogger(__name__)
T = TypeVar("T")
Row = dict[str, Any]

LWT = "lwt"  # execution profile names (see cassandra.py)
SERIAL = "serial"
RESOLVE_ATTEMPTS = 5

# Protocol v5 error "CAS write of unknown outcome"; driver 3.30 has no class for it and raises
# the plain ErrorMessage with this code.
CAS_WRITE_UNKNOWN = 0x1700

# After any of these an LWT may or may not have been applied (timeouts on the Paxos or commit
# phase, a replica failure mid-way, a connection lost after sending, every host failing in one
# of these ways). Unavailable and Overloaded are absent: the coordinator refused before Paxos.
_UNKNOWN = (
    WriteTimeout,
    ReadTimeout,
    WriteFailure,
    ReadFailure,
    OperationTimedOut,
    ConnectionException,
    NoHostAvailable,
)


def outcome_unknown(exc: BaseException) -> bool:
    """True when a conditional write that raised ``exc`` may nevertheless have been applied."""
    if isinstance(exc, _UNKNOWN):
        return True
    return isinstance(exc, ErrorMessage) and getattr(exc, "code", None) == CAS_WRITE_UNKNOWN


def describe(exc: BaseException) -> str:
    """One line for logs and StoreUnavailable messages (no statement values: no card data)."""
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:300]}"


def _complete(fut: asyncio.Future[list[Row]], rows: Any, exc: BaseException | None) -> None:
    if fut.done():  # the awaiter was cancelled; the request itself has finished anyway
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(list(rows or ()))


def _kind(query: Any, profile: str) -> str:
    """lwt | serial (a read that settles an LWT) | counter | batch | read | write. A counter
    batch runs on the LWT profile only for its retry policy (``risk.py``): no Paxos, so it is
    counted as what it is, not as an LWT (it was, before issue 19's count)."""
    if isinstance(query, BatchStatement) and query.batch_type == BatchType.COUNTER:
        return "counter"
    if profile == LWT:
        return "lwt"
    if profile == SERIAL:
        return "serial"
    if isinstance(query, BatchStatement):
        return "batch"
    text = getattr(query, "query_string", query)
    return "read" if isinstance(text, str) and text.lstrip()[:6].upper() == "SELECT" else "write"


def execute(
    session: Session, query: Any, params: Sequence[Any] | None, profile: str
) -> asyncio.Future[list[Row]]:
    """Send ``query`` (usually a PreparedStatement) and return a future of its first page of
    rows (every query here is bounded by a LIMIT below the fetch size, or a single row)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[Row]] = loop.create_future()

    def post(rows: Any, exc: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(_complete, fut, rows, exc)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    statements.count("cassandra", _kind(query, profile))
    try:
        response = session.execute_async(query, params, execution_profile=profile)
    except Exception as exc:  # e.g. NoHostAvailable raised while planning the request
        fut.set_exception(exc)
        return fut
    response.add_callbacks(lambda rows: post(rows, None), lambda exc: post(None, exc))
    return fut


def applied(rows: list[Row]) -> bool:
    """``[applied]`` of an LWT result."""
    return bool(rows and rows[0].get("[applied]"))


class CasOutcomeUnknown(StoreUnavailable):
    """A conditional write may or may not have been applied, and SERIAL reads could not tell
    within RESOLVE_ATTEMPTS (the cluster is down or partitioned). Callers fail closed."""


async def backoff(attempt: int) -> None:
    """Jittered pause before a retry of a contended LWT (retry pacing, not synchronisation)."""
    if attempt:
        await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


class Cql:
    """The open session and its statements, with the three ways the store talks to it:
    ``run`` (plain read or write), ``lwt`` (conditional write, outcome may be unknown) and
    ``serial`` (a SERIAL read that settles an unknown outcome). Also owns the background
    tasks (index clean-ups, writes whose caller went away) and per-row serialisation."""

    def __init__(self, session: Session, statements: Statements) -> None:
        self.session = session
        self.q = statements
        self.tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[tuple[str, ...], list[Any]] = {}

    async def run(self, stmt: Any, params: Any, profile: Any = EXEC_PROFILE_DEFAULT) -> list[Row]:
        """A plain read or write; any failure is StoreUnavailable (callers fail closed)."""
        try:
            return await execute(self.session, stmt, params, profile)
        except Exception as exc:
            raise StoreUnavailable(f"Cassandra: {describe(exc)}") from exc

    async def lwt(self, stmt: Any, params: Any) -> tuple[bool | None, Row]:
        """(True, row) applied; (False, current values) not applied; (None, {}) unknown."""
        try:
            rows = await execute(self.session, stmt, params, LWT)
        except Exception as exc:
            if outcome_unknown(exc):
                _log.warning("cassandra_cas_outcome_unknown: %s", describe(exc))
                return None, {}
            raise StoreUnavailable(f"Cassandra: {describe(exc)}") from exc
        return applied(rows), rows[0] if rows else {}

    async def serial(self, stmt: Any, params: Any) -> Row | None:
        """One row read at SERIAL: it completes or pre-empts any Paxos round still pending on
        the partition, so what it shows is final for the write we are unsure about."""
        last: Exception | None = None
        for attempt in range(RESOLVE_ATTEMPTS):
            await backoff(attempt + 1)
            try:
                rows = await self.run(stmt, params, SERIAL)
            except StoreUnavailable as exc:
                last = exc
                continue
            return rows[0] if rows else None
        raise CasOutcomeUnknown(f"outcome of a Cassandra LWT still unknown: {last}")

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            _log.info("cassandra background task failed: %s", describe(exc))

    async def shielded(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a write to its end even if the caller is cancelled (as the SQLite store does)."""
        return await asyncio.shield(self.spawn(coro))

    @contextlib.asynccontextmanager
    async def serialised(self, *key: str) -> AsyncIterator[None]:
        """One caller at a time per row in this process: Paxos then only sees contention
        between processes, not between our own coroutines."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                self._locks.pop(key, None)
