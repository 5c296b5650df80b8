"""Async facade over PKCS#11: ``await pool.run(job, *args)`` runs ``job(session, *args)``.

Why one thread. python-pkcs11 calls ``C_Initialize(NULL)``, which turns SoftHSM's internal locking
off, and it releases the GIL around every C call: two threads inside SoftHSM at once corrupt it
(measured: 15 of 15 two-thread runs crashed; README "One HSM thread per process"). So every
PKCS#11 call of this process runs on ONE thread, the process-wide ``hsm`` executor thread,
whatever the number of :class:`HsmPool` objects. ``workers`` therefore only accepts 1. To use
more cores, run more processes (spawned, each doing its own ``pkcs11.lib()`` and login): the
switch is stateless and scales by processes anyway; two processes measured ~2x on two cores.

Why batch. The executor hop (~80 us) costs more than most SoftHSM calls, so a job should do all
HSM work of one request (derive, verify MAC, decrypt, tokenize) in one call.

Sessions. Per process and token the HSM thread keeps one logged-in *anchor* session for the life
of the process (closing it would log every session out) and one *work* session handed to jobs.
Derived session keys live in the work session; it is reopened (and the key cache dropped) after a
session-level error. Key handles are cached per label (labels carry the version) in the HSM
thread; :func:`get_key` is how jobs look keys up.

Failure. Token missing, login failure, device/session errors and ``GeneralError`` raised out of a
job become :class:`HsmUnavailable` (callers fail closed); the next job reconnects. Jobs that
expect ``GeneralError`` as a data outcome (AES-GCM bad tag) catch it themselves.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import pkcs11
from opentelemetry import trace
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as px

from hsm.config import HsmConfig
from hsm.errors import HsmBusy, HsmError, HsmUnavailable, KeyNotFound
from hsm.labels import SWITCH

P = ParamSpec("P")
T = TypeVar("T")

# Errors after which the session (or the whole connection) cannot be trusted.
_SESSION_FATAL: tuple[type[Exception], ...] = (
    px.DeviceError,
    px.DeviceMemory,
    px.DeviceRemoved,
    px.GeneralError,
    px.HostMemory,
    px.FunctionFailed,
    px.OperationActive,
    px.SessionClosed,
    px.SessionHandleInvalid,
    px.SessionCount,
    px.TokenNotPresent,
    px.TokenNotRecognised,
    px.UserNotLoggedIn,
    px.ObjectHandleInvalid,
    px.KeyHandleInvalid,
)

_tracer = trace.get_tracer("hsm.pool")
_lock = threading.Lock()  # guards creation of the executor only
_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None
_hsm_thread: threading.local = threading.local()


@dataclass
class _TokenState:
    """PKCS#11 objects of one token; touched only from the HSM thread."""

    config: HsmConfig
    token: Any = None
    anchor: Any = None
    work: Any = None
    keys: dict[str, Any] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)

    def drop_sessions(self) -> None:
        self.keys.clear()
        self.scratch.clear()
        for name in ("work", "anchor"):
            sess = getattr(self, name)
            setattr(self, name, None)
            if sess is not None:
                try:
                    sess.close()
                except Exception:  # noqa: S110 - already broken; reconnect follows
                    pass


# (module, token label) -> state; only the HSM thread reads or writes it.
_states: dict[tuple[str, str], _TokenState] = {}
_loaded_conf: str | None = None


def _get_executor() -> ThreadPoolExecutor:
    global _executor, _executor_pid
    with _lock:
        if _executor is not None and _executor_pid != os.getpid():
            # A fork after C_Initialize: the child must not touch the parent's library state.
            raise HsmUnavailable("process forked after the HSM was initialised; use spawn")
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsm")
            _executor_pid = os.getpid()
        return _executor


def on_hsm_thread() -> bool:
    """True when called from the process's PKCS#11 thread."""
    return getattr(_hsm_thread, "active", False)


# SoftHSM rewrites the token file on every login, so a process that initialises or logs in
# while another process of the stack logs in can miss the token (NoSuchToken, sticky until
# reinitialize) or fail the login (GeneralError). Starting processes side by side is normal
# (make run, tests), so the first connection retries, bounded, with jittered backoff.
_CONNECT_ATTEMPTS = 8
_CONNECT_BACKOFF_S = 0.02
_TRANSIENT_AT_CONNECT = (px.NoSuchToken, px.GeneralError, px.TokenNotPresent)


def _connect(state: _TokenState) -> None:
    """Load the module, find the token, log in (anchor) and open the work session."""
    global _loaded_conf
    cfg = state.config
    if _loaded_conf is None:
        cfg.apply_env()
        _loaded_conf = cfg.conf
    elif _loaded_conf != cfg.conf:
        raise HsmUnavailable("SOFTHSM2_CONF differs from the one the module was loaded with")
    try:
        lib = pkcs11.lib(cfg.module)
    except Exception as exc:
        raise HsmUnavailable(f"cannot load PKCS#11 module ({type(exc).__name__})") from exc
    for attempt in range(_CONNECT_ATTEMPTS):
        try:
            _open_sessions(state, lib)
            return
        except HsmUnavailable as exc:
            cause = exc.__cause__
            others_open = any(st.work is not None for st in _states.values())
            last = attempt == _CONNECT_ATTEMPTS - 1
            if last or not isinstance(cause, _TRANSIENT_AT_CONNECT):
                raise
            if others_open and not isinstance(cause, px.NoSuchToken):
                raise
            # A party's token made after this process loaded the module (one token per party:
            # the ceremony adds tokens for new parties) is listed only after a reinitialise. We
            # are on the only PKCS#11 thread and between jobs, so every other token's sessions
            # can be dropped here; each reconnects at its next job.
            for other in _states.values():
                other.drop_sessions()
            time.sleep(random.uniform(0, _CONNECT_BACKOFF_S * 2**attempt))
            lib.reinitialize()


def _open_sessions(state: _TokenState, lib: Any) -> None:
    cfg = state.config
    try:
        token = lib.get_token(token_label=cfg.token)
    except (px.NoSuchToken, px.MultipleTokensReturned) as exc:
        raise HsmUnavailable(f"token {cfg.token!r}: {type(exc).__name__}") from exc
    except px.PKCS11Error as exc:
        raise HsmUnavailable(f"token lookup failed ({type(exc).__name__})") from exc
    try:
        try:
            anchor = token.open(rw=True, user_pin=cfg.pin)
        except px.UserAlreadyLoggedIn:
            # Login is per process and token; someone in this process already logged in.
            anchor = token.open(rw=True)
        work = token.open(rw=True)
    except px.PKCS11Error as exc:
        raise HsmUnavailable(f"login to token {cfg.token!r} failed ({type(exc).__name__})") from exc
    state.token, state.anchor, state.work = token, anchor, work
    state.keys.clear()
    state.scratch.clear()


def _execute(cfg: HsmConfig, job: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Body of every job, on the HSM thread."""
    _hsm_thread.active = True
    key = (cfg.module, cfg.token)
    state = _states.get(key)
    if state is None:
        state = _states[key] = _TokenState(cfg)
    elif not hmac.compare_digest(state.config.pin.encode(), cfg.pin.encode()):
        # Login is per process and token: without this check a second pool with a wrong PIN
        # would ride on the first pool's login.
        raise HsmUnavailable(f"login to token {cfg.token!r} failed (PIN differs)")
    if state.work is None:
        _connect(state)
    _hsm_thread.state = state
    try:
        return job(state.work, *args)
    except _SESSION_FATAL as exc:
        state.drop_sessions()
        raise HsmUnavailable(f"HSM session error ({type(exc).__name__}); reconnecting") from exc
    except px.PKCS11Error as exc:
        raise HsmError(f"PKCS#11 operation failed ({type(exc).__name__})") from exc
    finally:
        _hsm_thread.state = None


def _current_state(session: Any) -> _TokenState | None:
    state: _TokenState | None = getattr(_hsm_thread, "state", None)
    if state is not None and state.work is session:
        return state
    return None


def get_key(session: Any, label: str, object_class: ObjectClass = ObjectClass.SECRET_KEY) -> Any:
    """The key object labelled ``label``; cached per label while the work session lives.

    Outside a pool job (a raw session in a test) it simply looks the key up each time.
    Raises :class:`KeyNotFound` when no object, :class:`HsmError` when several carry the label.
    """
    state = _current_state(session)
    cache_key = f"{int(object_class)}:{label}"
    if state is not None:
        hit = state.keys.get(cache_key)
        if hit is not None:
            return hit
    try:
        key = session.get_key(object_class=object_class, label=label)
    except px.NoSuchKey as exc:
        raise KeyNotFound(f"no key labelled {label!r}") from exc
    except px.MultipleObjectsReturned as exc:
        raise HsmError(f"several objects labelled {label!r}; the ceremony must fix this") from exc
    if state is not None:
        state.keys[cache_key] = key
    return key


def missing_keys(session: Any, labels: Iterable[str]) -> list[str]:
    """HSM job step: the labels among ``labels`` that have no key (a start-up check that every
    key a node needs was made by the ceremony)."""
    missing = []
    for label in labels:
        try:
            get_key(session, label)
        except KeyNotFound:
            missing.append(label)
    return missing


def forget_key(session: Any, label: str) -> None:
    """Drop cached handles of ``label`` (after rotate/retire changed it)."""
    state = _current_state(session)
    if state is not None:
        for k in [k for k in state.keys if k.split(":", 1)[1] == label]:
            del state.keys[k]


def scratch(session: Any) -> dict[str, Any]:
    """Per-session scratch cache for jobs (e.g. current key versions with a timestamp).

    Cleared whenever the work session is replaced; a fresh dict outside pool jobs.
    """
    state = _current_state(session)
    return state.scratch if state is not None else {}


def pool_scratch(session: Any) -> dict[str, Any] | None:
    """The work session's scratch dict inside a pool job, else None.

    For caches of session objects: outside a pool job nobody would ever destroy them.
    """
    state = _current_state(session)
    return state.scratch if state is not None else None


def secret_key_labels(session: Any) -> list[str]:
    """Labels of all secret keys on the token (token objects only)."""
    out = []
    for obj in session.get_objects(
        {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}
    ):
        out.append(obj[Attribute.LABEL])
    return out


class HsmPool:
    """Async (and sync) entry point to the process's single PKCS#11 thread.

    ``workers`` must be 1 (see module docstring: SoftHSM is not thread-safe under
    python-pkcs11); scale with processes. ``max_pending`` bounds jobs waiting for the thread:
    beyond it :class:`HsmBusy` is raised at once, since a queued job would miss its deadline.
    """

    def __init__(
        self, config: HsmConfig | None = None, *, workers: int = 1, max_pending: int = 256
    ) -> None:
        if workers != 1:
            raise ValueError(
                "workers must be 1: python-pkcs11 initialises SoftHSM without locking, so only "
                "one thread per process may call it; scale by running more processes"
            )
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.config = config or HsmConfig.for_party(SWITCH)  # the switch's token by default
        self.workers = workers
        self.max_pending = max_pending
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.jobs = 0
        self.busy_seconds = 0.0

    def __repr__(self) -> str:
        return f"HsmPool(token={self.config.token!r}, workers=1, max_pending={self.max_pending})"

    def _admit(self) -> None:
        with self._pending_lock:
            if self._pending >= self.max_pending:
                raise HsmBusy(f"{self._pending} HSM jobs pending")
            self._pending += 1

    def _release(self, _fut: Any = None) -> None:
        with self._pending_lock:
            self._pending -= 1

    def _timed(self, job: Callable[..., T], args: tuple[Any, ...]) -> T:
        t0 = time.perf_counter()
        try:
            return _execute(self.config, job, args)
        finally:
            self.jobs += 1
            self.busy_seconds += time.perf_counter() - t0

    def _submit(self, job: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        """Queue a job; it counts as pending until it has run or was cancelled before running
        (an abandoned await does not free its slot while the job still occupies the thread)."""
        self._admit()
        try:
            fut = _get_executor().submit(self._timed, job, args)
        except BaseException:
            self._release()
            raise
        fut.add_done_callback(self._release)
        return fut

    async def run(self, job: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``job(session, *args, **kwargs)`` on the HSM thread and await its result.

        Cancelling the await (deadline) drops a job that has not started yet; one already
        running finishes and its result is discarded.
        """
        if kwargs:
            job = functools.partial(job, **kwargs)
        if not trace.get_current_span().is_recording():  # no trace, or one sampled out
            return await asyncio.wrap_future(self._submit(job, args))
        with _tracer.start_as_current_span(
            f"hsm {job_name(job)}",
            attributes={"payswitch.hsm.token": self.config.token},
            record_exception=False,
        ):
            return await asyncio.wrap_future(self._submit(job, args))

    def run_sync(self, job: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking variant for CLIs and scripts (never call from the event loop thread)."""
        if kwargs:
            job = functools.partial(job, **kwargs)
        if on_hsm_thread():
            return self._timed(job, args)
        return self._submit(job, args).result()

    async def start(self) -> None:
        """Connect and log in now, so a misconfigured HSM fails at startup, not first use."""
        await self.run(_ping)

    async def healthy(self) -> bool:
        try:
            await self.run(_ping)
        except HsmError:
            return False
        return True

    @property
    def pending(self) -> int:
        return self._pending


def job_name(job: Callable[..., Any]) -> str:
    """A job's function name, for its span: ``hsm <name>`` (never its arguments)."""
    while isinstance(job, functools.partial):
        job = job.func
    return str(getattr(job, "__name__", "job")).lstrip("_") or "job"


def _ping(session: Any) -> bool:
    session.generate_random(64)
    return True


def reset_process_state() -> None:
    """Close every session of this process (tests and orderly shutdown).

    Runs on the HSM thread; the module stays loaded (SOFTHSM2_CONF cannot change after that).
    """

    def _close_all() -> None:
        for state in _states.values():
            state.drop_sessions()
        _states.clear()

    if on_hsm_thread():
        _close_all()
    else:
        _get_executor().submit(_close_all).result()
