"""Cassandra ledger: a writer that dies between its claim and its lines loses nothing.

The claim row carries the posting's lines, and a pending marker is written before the claim:
the next reader (any process) or a replay of the same posting finishes the lines exactly once.
The death is simulated by failing the lines step right after a successful claim (the state it
leaves is the state a kill leaves: claim applied, marker present, no lines).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cassandra_kit
import pytest
from storekit import NOW

from switch.domain.ledger import LedgerLine, LedgerPosting, PostingConflict
from switch.store import open_store
from switch.store.cassandra.ledger import CassandraLedgerMixin

P = LedgerPosting(
    "tx-9/CAPTURE_PRESENTED/0",
    "tx-9",
    "CAPTURE_PRESENTED",
    "000000000009",
    "KWD",
    NOW,
    (
        LedgerLine("acquirer_receivable:ACQ1", "KWD", 1250),
        LedgerLine("merchant_payable:M1", "KWD", -1250),
    ),
)


def _claim_complete(session, ks: str):
    query = f"SELECT complete FROM {ks}.ledger_claims WHERE posting_id = %s"  # noqa: S608
    return session.execute(query, (P.posting_id,)).one()


class Died(Exception):
    pass


@pytest.fixture
def url(tmp_path: Path) -> str:
    return cassandra_kit.contract_url(tmp_path)


async def _die_after_claim(monkeypatch, url: str) -> None:
    async def die(self, posting):
        raise Died

    async with open_store(url) as doomed:
        with monkeypatch.context() as m:
            m.setattr(CassandraLedgerMixin, "_write_lines", die)
            with pytest.raises(Died):
                await doomed.ledger_post(P)
    session, ks = cassandra_kit.inspect()
    claim = _claim_complete(session, ks)
    assert claim is not None and claim.complete is False
    assert session.execute(f"SELECT * FROM {ks}.ledger_lines").one() is None  # noqa: S608


async def test_a_reader_finishes_a_posting_whose_writer_died(monkeypatch, url: str) -> None:
    await _die_after_claim(monkeypatch, url)
    async with open_store(url) as survivor:
        entries = await survivor.ledger_entries("KWD")
        assert sorted((e.account, e.amount_minor) for e in entries) == [
            ("acquirer_receivable:ACQ1", 1250),
            ("merchant_payable:M1", -1250),
        ]
        assert not await survivor.ledger_post(P)  # the replay posts nothing new
        assert len(await survivor.ledger_entries("KWD")) == 2
    session, ks = cassandra_kit.inspect()
    assert session.execute(f"SELECT * FROM {ks}.ledger_pending_by_day").one() is None  # noqa: S608
    claim = _claim_complete(session, ks)
    assert claim.complete is True


async def test_a_replay_finishes_a_posting_whose_writer_died(monkeypatch, url: str) -> None:
    await _die_after_claim(monkeypatch, url)
    async with open_store(url) as survivor:
        assert not await survivor.ledger_post(P)  # not new: the id was claimed ...
        session, ks = cassandra_kit.inspect()
        rows = list(session.execute(f"SELECT amount_minor FROM {ks}.ledger_lines"))  # noqa: S608
        assert sorted(r.amount_minor for r in rows) == [-1250, 1250]  # ... and now complete


async def test_a_page_whose_writer_died_after_its_claims_is_finished_by_a_reader(
    monkeypatch, url: str
) -> None:
    """Issue 17: ``ledger_post_many`` dies after claiming a page (markers by posting day and
    slot); the reader of that day finishes every posting of the page, once."""
    lines = [(LedgerLine("a", "EUR", 10 + n), LedgerLine("b", "EUR", -10 - n)) for n in range(6)]
    page = [
        LedgerPosting(f"tx-p{n}/CAPTURE_PRESENTED/0", f"tx-p{n}", "CAPTURE_PRESENTED", "",
                      "EUR", NOW + n, lines[n])
        for n in range(6)
    ]  # fmt: skip

    async def die(self, postings):
        raise Died

    async with open_store(url) as doomed:
        with monkeypatch.context() as m:
            m.setattr(CassandraLedgerMixin, "_write_lines_many", die)  # the page's lines
            with pytest.raises(Died):
                await doomed.ledger_post_many(page)
    async with open_store(url) as survivor:
        entries = await survivor.ledger_entries("EUR")
        assert sorted(e.posting_id for e in entries) == sorted(p.posting_id for p in page * 2)
        assert await survivor.ledger_post_many(page) == 0
        assert len(await survivor.ledger_entries("EUR")) == 12
    session, ks = cassandra_kit.inspect()
    assert session.execute(f"SELECT * FROM {ks}.ledger_pending_by_day").one() is None  # noqa: S608


async def test_the_writer_lock_is_released_after_a_conflict_and_held_by_one_page(
    url: str,
) -> None:
    """Issue 17: pages claim under the ledger's writer lock (a ``leases`` row). A page that
    fails (a conflict) releases it, so the next page posts at once; none is left behind."""
    lines = (LedgerLine("a", "EUR", 10), LedgerLine("b", "EUR", -10))
    other = (LedgerLine("a", "EUR", 11), LedgerLine("b", "EUR", -11))
    first = LedgerPosting("lk-1", "tx-lk", "K", "", "EUR", NOW, lines)
    async with open_store(url) as store:
        assert await store.ledger_post_many([first]) == 1
        with pytest.raises(PostingConflict):
            await store.ledger_post_many([dataclasses.replace(first, lines=other)])
        second = LedgerPosting("lk-2", "tx-lk", "K", "", "EUR", NOW, lines)
        assert await store.ledger_post_many([first, second]) == 1
    session, ks = cassandra_kit.inspect()
    rows = list(session.execute(f"SELECT name FROM {ks}.leases"))  # noqa: S608
    assert [r.name for r in rows if r.name == "ledger-writer"] == []
