"""What the store's state machines share (tests/store/test_store_stateful_*.py): the Hypothesis
profiles, and a loop that drives one real store from Hypothesis's synchronous rules.

Profiles (``HYPOTHESIS_PROFILE``, default ``ci``):

- ``ci``: few short runs, ``derandomize`` and no example database, so that every CI run tries
  the very same interleavings: a red CI run is a real regression, never a lucky draw. Small
  enough that the three machines on both backends add well under a minute to ``make test``.
- ``long``: thousands of steps per machine, random seeds (each run explores new
  interleavings) and the example database in ``.hypothesis/`` so that a failure found once is
  replayed first next time. ``make stateful`` runs it.

Each machine instance (one Hypothesis example) works on ids, terminals and keys of its own
(``run_id``), so examples never see one another's rows in the store a test shares between them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from switch.store import open_store
from switch.store.base import Store

T = TypeVar("T")

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "30")),
    stateful_step_count=int(os.environ.get("STATEFUL_STEPS", "30")),
    derandomize=True,
    database=None,
    deadline=None,  # a Cassandra round trip on a busy 2-core box is no regression
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "150")),
    stateful_step_count=int(os.environ.get("STATEFUL_STEPS", "60")),
    derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)


def profile() -> settings:
    """The profile ``HYPOTHESIS_PROFILE`` names (``ci`` when unset)."""
    return settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Driver:
    """One event loop of the test's own and the stores opened on it: Hypothesis calls rules
    synchronously, each runs its coroutine to its end here (pytest's loop is not running
    during a synchronous test). ``stores[0]`` is the main store; the others are further
    connections (Cassandra: sessions) on the same data, as other switch processes have."""

    def __init__(self, url: str, connections: int = 1) -> None:
        self._runner = asyncio.Runner()
        self.stores: list[Store] = []
        for _ in range(connections):
            s = open_store(url)
            self.run(s.open())
            self.stores.append(s)

    @property
    def store(self) -> Store:
        return self.stores[0]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def close(self) -> None:
        try:
            for s in self.stores:
                self.run(s.close())
        finally:
            self._runner.close()


_tally: Counter[str] = Counter()


def tally(label: str) -> None:
    """Count what a step did: Hypothesis's statistics for the failing example, and a
    summary after the run when STATEFUL_STATS is set (to see what a profile explores)."""
    event(label)
    _tally[label] += 1


def run_machine(machine: type[RuleBasedStateMachine], driver: Driver) -> None:
    """Run ``machine`` under the active profile, every instance driving ``driver``."""
    bound = type(machine.__name__, (machine,), {"driver": driver})
    _tally.clear()
    try:
        run_state_machine_as_test(bound, settings=profile())
    finally:
        if os.environ.get("STATEFUL_STATS"):
            print(f"\n{machine.__name__}:", dict(sorted(_tally.items())))


def run_id() -> str:
    """A fresh prefix for one machine instance's ids (unique across examples and processes)."""
    return uuid.uuid4().hex[:10]
