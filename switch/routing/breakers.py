"""Circuit breakers, one per acquirer connector of this switch process.

closed -> open: ``failure_threshold`` consecutive failures, or an error rate of at least
``error_rate`` over the calls of the last ``window_s`` seconds once there were at least
``min_volume`` of them (so two failures out of three calls do not open a quiet circuit).
open -> half-open: after ``open_s`` seconds the next requests are admitted as probes, at most
``half_open_probes`` at once. A probe's success closes the circuit (counters reset); a
failure re-opens it for another ``open_s``.

What counts: a failure is a call that produced no answer (``OutcomeUnknown``: deadline,
broken connection) or one refused before sending (no connection within the connect bound).
Any answer is a success, declines included: the acquirer is up, whatever the issuer said.

Breakers are per process (not in the store): each switch process judges its own connections,
which is what the circuit protects (DESIGN leaves this open; decided here). The clock is
injected so that unit tests drive the transitions without sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from payswitch.logs import get as get_logger
from payswitch.world.topology import BreakerConfig
from switch.core import metrics

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
_GAUGE = {
    CLOSED: metrics.CIRCUIT_CLOSED,
    HALF_OPEN: metrics.CIRCUIT_HALF_OPEN,
    OPEN: metrics.CIRCUIT_OPEN,
}

_log = get_logger("switch.routing.breakers")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CircuitSnapshot:
    """One circuit as an operator sees it (the admin service's ListCircuits)."""

    acquirer_id: str
    state: str  # "closed" | "half_open" | "open"
    consecutive_failures: int
    error_rate: float
    opened_at: float  # clock time the circuit last opened; 0.0 if never


class CircuitBreaker:
    def __init__(
        self, acquirer_id: str, config: BreakerConfig, clock: Clock = time.monotonic
    ) -> None:
        self.acquirer_id = acquirer_id
        self._cfg = config
        self._clock = clock
        self._state = CLOSED
        self._consecutive = 0
        self._calls: deque[tuple[float, bool]] = deque()  # (when, failed) in the window
        self._opened_at = 0.0
        self._probes = 0  # probes admitted and not yet reported
        self._publish()

    # --- queries ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The state as of now (an open circuit past its cool-down reads half-open)."""
        if self._state == OPEN and self._clock() - self._opened_at >= self._cfg.open_s:
            return HALF_OPEN
        return self._state

    def available(self) -> bool:
        """Would ``allow`` admit a request now? (No side effect: used to order routes.)"""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN:
            probes = 0 if self._state == OPEN else self._probes
            return probes < self._cfg.half_open_probes
        return False

    def error_rate(self) -> float:
        self._prune()
        if not self._calls:
            return 0.0
        return sum(1 for _, failed in self._calls if failed) / len(self._calls)

    def snapshot(self) -> CircuitSnapshot:
        return CircuitSnapshot(
            self.acquirer_id, self.state, self._consecutive, self.error_rate(), self._opened_at
        )

    # --- the protocol: allow, then exactly one of success / failure / cancel ---------------
    def allow(self) -> bool:
        """Admit one request (a probe when half-open) or refuse it (open)."""
        if self._state == OPEN:
            if self._clock() - self._opened_at < self._cfg.open_s:
                return False
            self._move(HALF_OPEN)
            self._probes = 0
        if self._state == HALF_OPEN:
            if self._probes >= self._cfg.half_open_probes:
                return False
            self._probes += 1
        return True

    def success(self) -> None:
        if self._state == HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._calls.clear()
            self._consecutive = 0
            self._move(CLOSED)
            return
        self._consecutive = 0
        self._note(failed=False)

    def failure(self) -> None:
        if self._state == HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._consecutive += 1
            self._open()
            return
        self._consecutive += 1
        self._note(failed=True)
        if self._state == CLOSED and self._tripped():
            self._open()

    def cancel(self) -> None:
        """An admitted request that was not sent after all (no outcome to report)."""
        if self._state == HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    # --- internals ----------------------------------------------------------------------
    def _note(self, failed: bool) -> None:
        self._calls.append((self._clock(), failed))
        self._prune()

    def _prune(self) -> None:
        horizon = self._clock() - self._cfg.window_s
        while self._calls and self._calls[0][0] < horizon:
            self._calls.popleft()

    def _tripped(self) -> bool:
        if self._consecutive >= self._cfg.failure_threshold:
            return True
        return (
            len(self._calls) >= self._cfg.min_volume and self.error_rate() >= self._cfg.error_rate
        )

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(OPEN)

    def _move(self, state: str) -> None:
        if state != self._state:
            _log.warning(
                "circuit", acquirer=self.acquirer_id, state=state, was=self._state,
                consecutive_failures=self._consecutive,
            )  # fmt: skip
        self._state = state
        self._publish()

    def _publish(self) -> None:
        metrics.get().circuit_state.labels(self.acquirer_id).set(_GAUGE[self._state])


class Breakers:
    """Every acquirer's circuit breaker in this switch process."""

    def __init__(
        self, acquirer_ids: Iterable[str], config: BreakerConfig, clock: Clock = time.monotonic
    ) -> None:
        self.config = config
        self._by_id = {a: CircuitBreaker(a, config, clock) for a in acquirer_ids}

    def get(self, acquirer_id: str) -> CircuitBreaker:
        return self._by_id[acquirer_id]

    def available(self, acquirer_id: str) -> bool:
        breaker = self._by_id.get(acquirer_id)
        return breaker is None or breaker.available()

    def snapshots(self) -> list[CircuitSnapshot]:
        return [b.snapshot() for b in self._by_id.values()]
