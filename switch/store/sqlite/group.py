"""The SQLite store thread's queue, with group commit: several authorizations' writes in one
transaction and one fsync, each still durable before its caller hears of it.

Why: with ``synchronous=full`` every commit is an fsync, and an authorization makes three to
five of them (claim, intent, the risk stage's observation and decision, record). Under load
those are the store thread's main cost and the queue behind it the switch's latency. Here the
store thread takes every job waiting when it wakes (up to ``MAX_BATCH``) and runs the *grouped*
ones (the hot path's writes, ``SqliteStore._call_grouped``) inside one ``BEGIN IMMEDIATE``,
each in its own SAVEPOINT (``SqliteStore._write`` switches to it): a job that fails rolls back
to its savepoint and alone gets its error, exactly as its own transaction would. One COMMIT
then makes the whole group durable, and only after it are the results handed back, so no
answer leaves before the writes that make it true are on disk. A COMMIT that fails fails every
job of the group (none of their writes holds), as does an error that ends the transaction
itself (SQLite rolls back the whole transaction on some I/O errors).

Jobs that are not grouped (reads, the back office, anything with its own BEGIN/COMMIT) run as
before, alone, in arrival order: a group waiting ahead of one is committed first. No job waits
for a timer: a group is whatever queued while the thread was busy, so one lone request costs
what it did. Results reach the event loop in one ``call_soon_threadsafe`` per wake-up rather
than one per job (the thread hop is per batch too).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from switch.domain.errors import StoreUnavailable
from switch.store import statements

MAX_BATCH = 64  # jobs per wake-up: bounds how long the first of them waits for its commit


class GroupHost(Protocol):
    """What the queue needs of ``SqliteStore``."""

    _conn: sqlite3.Connection | None
    _grouping: bool

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None: ...


class Job:
    __slots__ = ("args", "error", "fn", "future", "grouped", "loop", "result")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        grouped: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.args = args
        self.grouped = grouped
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.result: Any = None
        self.error: BaseException | None = None


def _unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    return StoreUnavailable(f"SQLite: {type(exc).__name__}: {exc}")


class StoreQueue:
    """Jobs for the one store thread (``executor``, a single worker); see the module doc."""

    def __init__(self, executor: Executor, host: GroupHost) -> None:
        self._executor = executor
        self._host = host
        self._lock = threading.Lock()
        self._pending: list[Job] = []
        self._draining = False

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], grouped: bool) -> Any:
        """Queue ``fn(conn, *args)``; the awaitable of its result (on the caller's loop)."""
        job = Job(fn, args, grouped, asyncio.get_running_loop())
        with self._lock:
            self._pending.append(job)
            start = not self._draining
            self._draining = True
        if start:
            try:
                self._executor.submit(self._drain)
            except RuntimeError as exc:  # shut down: nothing queued will run
                with self._lock:
                    stranded, self._pending = self._pending, []
                    self._draining = False
                for j in stranded:
                    j.error = StoreUnavailable(f"SQLite store is closed ({exc})")
                self._settle(stranded)
        return job.future

    # --- the store thread ---------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            with self._lock:
                jobs = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                if not jobs:
                    self._draining = False
                    return
            done: list[Job] = []
            group: list[Job] = []
            for job in jobs:
                if job.grouped:
                    self._in_group(job, group, done)
                else:
                    self._commit(group, done)
                    group = []
                    self._alone(job)
                    done.append(job)
            self._commit(group, done)
            self._settle(done)

    def _alone(self, job: Job) -> None:
        try:
            job.result = self._host._guarded(job.fn, *job.args)
        except BaseException as exc:  # handed to the caller, as a future would
            job.error = exc

    def _in_group(self, job: Job, group: list[Job], done: list[Job]) -> None:
        host = self._host
        conn = host._conn
        if conn is None:
            job.error = StoreUnavailable("SQLite store is not open")
            done.append(job)
            return
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            host._grouping = True
            try:
                job.result = job.fn(conn, *job.args)
            finally:
                host._grouping = False
        except sqlite3.Error as exc:
            job.error = _unavailable(exc)
        except BaseException as exc:  # its savepoint is rolled back (SqliteStore._write)
            job.error = exc
        if job.error is None:
            group.append(job)
            return
        done.append(job)
        if not conn.in_transaction and group:  # the error ended the whole transaction
            lost = StoreUnavailable("SQLite: the group's transaction was rolled back")
            for other in group:
                other.result, other.error = None, lost
            done.extend(group)
            group.clear()

    def _commit(self, group: list[Job], done: list[Job]) -> None:
        """COMMIT the open group (one fsync); on failure none of its writes holds."""
        conn = self._host._conn
        if conn is not None and conn.in_transaction:
            statements.count("sqlite", "commit")
            statements.count("sqlite", "write", len(group))
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._host._rollback(conn)
                for job in group:
                    job.result, job.error = None, _unavailable(exc)
        done.extend(group)

    @staticmethod
    def _settle(jobs: list[Job]) -> None:
        """Hand results back: one thread hop per event loop, not one per job."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
        for job in jobs:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, mine in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, mine)
            except RuntimeError:
                pass  # the loop is closed: nobody is waiting any more


def _deliver(jobs: list[Job]) -> None:
    for job in jobs:
        if job.future.done():  # the caller was cancelled; the write ran to its end anyway
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)
