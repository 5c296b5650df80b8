"""Retrying one unchanged request: exponential backoff with full jitter, bounded twice.

Only outcomes that say "try again" are retried: UNAVAILABLE (no switch reachable),
DEADLINE_EXCEEDED (no answer in time: the first attempt may have gone through) and ABORTED
(the first request under this key is still in flight). Every retry resends the very same
message, so the idempotency key and the STAN make a late duplicate harmless: the switch
replays the first answer instead of charging again. Anything else (INVALID_ARGUMENT,
FAILED_PRECONDITION, ...) is final and raised at once.

Full jitter (sleep uniform in [0, cap]) spreads a fleet of terminals that lost the switch at
the same moment instead of letting them return in lockstep.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from terminals.errors import SwitchUnavailable, TerminalError, from_rpc_error

log = logging.getLogger("terminals.retry")

RETRYABLE: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    }
)

# An attempt with less time than this left cannot usefully reach the switch.
MIN_ATTEMPT_S = 0.05


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. ``max_attempts`` counts the first try; ``total_timeout_s`` bounds the
    whole operation (attempts plus backoff sleeps) whatever the per-attempt deadline."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 1.0
    multiplier: float = 2.0
    total_timeout_s: float = 8.0
    retryable: frozenset[grpc.StatusCode] = RETRYABLE

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("backoff must be non-negative and multiplier at least 1")
        if self.total_timeout_s <= 0:
            raise ValueError("total_timeout_s must be positive")

    def backoff_cap(self, retry: int) -> float:
        """Upper bound of the sleep before retry number ``retry`` (0 for the first retry)."""
        return min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, cap]."""
        return rng.uniform(0.0, self.backoff_cap(retry))


NO_RETRY = RetryPolicy(max_attempts=1)

T = TypeVar("T")


async def call_with_retry(
    invoke: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    deadline_s: float,
    *,
    what: str = "request",
    idempotency_key: str = "",
    stan: int = 0,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``invoke(timeout_s)`` until it succeeds, fails for good, or the policy runs out.

    ``invoke`` must send the same message each time; it gets the per-attempt deadline, which
    is ``deadline_s`` or less when the total budget is nearly spent.
    """
    rng = rng or random.Random()  # jitter, not security
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        left = policy.total_timeout_s - (clock() - start)
        try:
            return await invoke(max(min(deadline_s, left), MIN_ATTEMPT_S))
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code not in policy.retryable:
                raise from_rpc_error(
                    err, attempts=attempt, idempotency_key=idempotency_key, stan=stan
                ) from None
            last: TerminalError = from_rpc_error(
                err, attempts=attempt, idempotency_key=idempotency_key, stan=stan
            )
        if attempt >= policy.max_attempts:
            raise last
        delay = policy.backoff(attempt - 1, rng)
        if clock() - start + delay + MIN_ATTEMPT_S > policy.total_timeout_s:
            raise SwitchUnavailable(
                f"{last.code_name}: gave up after {attempt} attempt(s), "
                f"{policy.total_timeout_s:g} s budget spent",
                attempts=attempt,
                code=last.code,
                idempotency_key=idempotency_key,
                stan=stan,
            )
        log.info(
            "retrying %s key=%s stan=%s after %s (attempt %d, backoff %.3f s)",
            what,
            idempotency_key,
            stan,
            last.code_name,
            attempt,
            delay,
        )
        await sleep(delay)
