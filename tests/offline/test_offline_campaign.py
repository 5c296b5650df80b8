"""A short slice of the seeded offline campaign (tests/offline/campaign.py; the full run is
``make offline-campaign SEEDS=200``): every dishonest act caught, no honest spend flagged,
honest spends paid exactly once, on SQLite and on Cassandra."""

from __future__ import annotations

from pathlib import Path

import cassandra_kit
import pytest

from tests.offline.campaign import campaign


async def test_campaign_slice_sqlite(tmp_path: Path) -> None:
    results = await campaign(range(1, 7), "sqlite", tmp_path)
    assert sum(r.dishonest for r in results) > 0
    assert [r.misses for r in results if not r.ok] == []


@pytest.mark.timeout(240)
async def test_campaign_slice_cassandra(tmp_path: Path) -> None:
    """One seed with four dishonest acts (the full run: make offline-campaign on Cassandra)."""
    url = cassandra_kit.contract_url(tmp_path)
    results = await campaign(range(115, 116), url, tmp_path)
    assert sum(r.dishonest for r in results) == 4
    assert [r.misses for r in results if not r.ok] == []
