"""The fault-injection harness in CI: a few seeds, each a fresh stack of real processes
driven through switch kills, node restarts, an acquirer outage (stand-in) and runtime network
faults, then a cut-off, checked against the issuers' books, the switch, its ledger and the
settlement reports (``tests/faults/invariants.py``, ``cutoff.py``). Thousands of seeds: see
the README (``make faults SEEDS=1..1000``)."""

from __future__ import annotations

import pytest

from .harness import run_seed
from .plan import Action, make_plan

pytestmark = pytest.mark.e2e

PAYMENTS = 40
# (seed, store): SQLite twice, the shared Cassandra node once (a fresh keyspace).
SEEDS = [(3, "sqlite"), (11, "sqlite"), (7, "cassandra")]


@pytest.mark.parametrize(("seed", "store"), SEEDS)
async def test_seed_keeps_every_invariant(seed: int, store: str, tmp_path) -> None:
    lines: list[str] = []
    result = await run_seed(seed, PAYMENTS, store, tmp_path / f"seed-{seed}", log=lines.append)
    assert result.ok, "\n".join([*result.violations, *lines, f"replay: {result.command()}"])
    # The run was not a quiet one: the switch was killed and restarted, payments were both
    # approved and refused, and every one of them reached the switch.
    starts = (tmp_path / f"seed-{seed}" / "switch-1.log").read_text().count("--- starting")
    kills = sum(e.action is Action.KILL_SWITCH for e in make_plan(seed, PAYMENTS).events)
    assert starts == 1 + kills >= 2
    assert result.stats.get("answer 00", 0) > 0
    assert sum(v for k, v in result.stats.items() if k.startswith("answer ")) == PAYMENTS
    assert result.stats.get("no-transaction", 0) < PAYMENTS
    # The cut-off settled sales (and the ledger, payables and reconciliation held).
    assert result.stats.get("sales settled", 0) > 0 and result.stats.get("reports", 0) > 0


def test_a_seed_is_a_scenario() -> None:
    first, again, other = make_plan(5, 40), make_plan(5, 40), make_plan(6, 40)
    assert first.payments == again.payments
    assert [e.describe() for e in first.events] == [e.describe() for e in again.events]
    assert first.payments != other.payments
    assert any(e.action is Action.KILL_SWITCH for e in first.events)


def test_a_campaign_splits_its_range_over_the_jobs() -> None:
    from .campaign import chunks, seed_range

    assert seed_range("5") == range(1, 6) and seed_range("7..9") == range(7, 10)
    parts = chunks(seed_range("1..10"), 3)
    assert parts == [range(1, 5), range(5, 8), range(8, 11)]
    assert chunks(seed_range("3"), 8) == [range(1, 2), range(2, 3), range(3, 4)]
