"""Contract: ledger postings, reconciliation issues and disputes, on every backend."""

from __future__ import annotations

import asyncio

import pytest
from storekit import NOW

from switch.domain.errors import NotFound
from switch.domain.ledger import (
    Dispute,
    DisputeChanges,
    DisputeConflict,
    DisputeState,
    IssueStatus,
    LedgerLine,
    LedgerPosting,
    PostingConflict,
    ReconIssue,
    UnbalancedPosting,
)
from switch.store.base import Store


def posting(pid: str, amount: int = 1000, currency: str = "EUR", at: float = NOW, rrn: str = ""):
    return LedgerPosting(
        pid,
        "tx-1",
        "CAPTURE_PRESENTED",
        rrn,
        currency,
        at,
        (LedgerLine("a", currency, amount), LedgerLine("b", currency, -amount)),
    )


async def test_post_is_idempotent_on_the_posting_id(store: Store) -> None:
    assert await store.ledger_post(posting("p1", rrn="000000000001"))
    assert not await store.ledger_post(posting("p1", rrn="000000000001"))
    entries = await store.ledger_entries("EUR")
    assert [(e.account, e.amount_minor) for e in entries] == [("a", 1000), ("b", -1000)]
    got = await store.ledger_get("p1")
    assert got is not None and got.same_content(posting("p1"))
    assert [p.posting_id for p in await store.ledger_postings_for_rrn("000000000001")] == ["p1"]
    assert await store.ledger_postings_for_rrn("999") == []


async def test_concurrent_posts_of_one_id_write_once(store: Store, open_more) -> None:
    other = await open_more()
    won = await asyncio.gather(*(s.ledger_post(posting("p2")) for s in (store, other) * 3))
    assert sum(won) == 1
    assert len(await store.ledger_entries("EUR")) == 2


async def test_other_lines_under_a_taken_id_conflict(store: Store) -> None:
    await store.ledger_post(posting("p3", 1000))
    with pytest.raises(PostingConflict):
        await store.ledger_post(posting("p3", 999))


@pytest.mark.parametrize(
    "lines",
    [
        (LedgerLine("a", "EUR", 10), LedgerLine("b", "EUR", -9)),
        (LedgerLine("a", "EUR", 10), LedgerLine("b", "JPY", -10)),
        (LedgerLine("a", "EUR", 10),),
        (LedgerLine("a", "EUR", 0), LedgerLine("b", "EUR", 0)),
    ],
    ids=["unbalanced", "mixed-currency", "one-line", "zero"],
)
async def test_malformed_postings_are_refused_and_write_nothing(store: Store, lines) -> None:
    with pytest.raises(UnbalancedPosting):
        await store.ledger_post(LedgerPosting("bad", "tx", "K", "", "EUR", NOW, lines))
    assert await store.ledger_get("bad") is None
    assert await store.ledger_entries("EUR") == []


async def test_entries_by_currency_and_time(store: Store) -> None:
    await store.ledger_post(posting("e1", 100, "EUR", NOW))
    await store.ledger_post(posting("e2", 200, "EUR", NOW + 86_400 * 2))
    await store.ledger_post(posting("j1", 5, "JPY", NOW))
    assert await store.ledger_currencies() == ["EUR", "JPY"]
    assert {e.posting_id for e in await store.ledger_entries("EUR", NOW + 10)} == {"e1"}
    assert {e.posting_id for e in await store.ledger_entries("EUR")} == {"e1", "e2"}
    assert {e.currency for e in await store.ledger_entries("JPY")} == {"JPY"}


def issue(issue_id: str = "i1", detail: str = "{}") -> ReconIssue:
    return ReconIssue(issue_id, "AMOUNT_MISMATCH", "CAPTURE", "000000000001", "tx", "EUR", detail)


async def test_recon_issue_upsert_keeps_the_operator_status(store: Store) -> None:
    assert await store.recon_upsert(issue(), NOW)
    assert not await store.recon_upsert(issue(detail='{"x": 1}'), NOW + 5)
    [found] = await store.recon_issues()
    assert (found.status, found.first_seen, found.last_seen) == (IssueStatus.OPEN, NOW, NOW + 5)
    assert found.detail == '{"x": 1}'
    assert await store.recon_get("i1") == found and await store.recon_get("nope") is None
    done = await store.recon_set_status("i1", IssueStatus.RESOLVED, "fixed by hand", NOW + 9)
    assert (done.status, done.note, done.resolved_at) == (
        IssueStatus.RESOLVED,
        "fixed by hand",
        NOW + 9,
    )
    assert not await store.recon_upsert(issue(), NOW + 10)
    assert (await store.recon_issues(IssueStatus.RESOLVED))[0].note == "fixed by hand"
    assert await store.recon_issues(IssueStatus.OPEN) == []
    with pytest.raises(ValueError):
        await store.recon_set_status("i1", IssueStatus.IGNORED, "again", NOW + 11)
    with pytest.raises(NotFound):
        await store.recon_set_status("nope", IssueStatus.IGNORED, "x", NOW)


def dispute(did: str = "cb-1") -> Dispute:
    return Dispute(did, "tx-1", "000000000001", "M001", "ACQ1", "ISS1", 500, "EUR", "10.4",
                   DisputeState.CHARGEBACK, NOW, NOW + 30 * 86_400, updated_at=NOW)  # fmt: skip


async def test_dispute_create_is_idempotent_and_transitions_compare_and_set(store: Store) -> None:
    created, new = await store.dispute_create(dispute())
    assert new and created == dispute()
    again, new = await store.dispute_create(dispute().copy(amount_minor=1))
    assert not new and again == dispute()
    moved = await store.dispute_transition(
        "cb-1", DisputeState.CHARGEBACK, DisputeState.REPRESENTED,
        DisputeChanges(evidence="signed receipt", response_due=NOW + 99, updated_at=NOW + 1),
    )  # fmt: skip
    assert (moved.state, moved.evidence, moved.version) == (
        DisputeState.REPRESENTED,
        "signed receipt",
        2,
    )
    assert await store.dispute_get("cb-1") == moved
    with pytest.raises(DisputeConflict) as info:
        await store.dispute_transition(
            "cb-1", DisputeState.CHARGEBACK, DisputeState.ACCEPTED, DisputeChanges()
        )
    assert info.value.current == moved
    with pytest.raises(ValueError):
        await store.dispute_transition(
            "cb-1", DisputeState.REPRESENTED, DisputeState.ACCEPTED, DisputeChanges()
        )
    with pytest.raises(NotFound):
        await store.dispute_transition(
            "zz", DisputeState.CHARGEBACK, DisputeState.ACCEPTED, DisputeChanges()
        )
    await store.dispute_create(dispute("cb-2"))
    assert [d.dispute_id for d in await store.disputes()] == ["cb-1", "cb-2"]
    assert [d.dispute_id for d in await store.disputes(DisputeState.CHARGEBACK)] == ["cb-2"]
    assert await store.dispute_get("zz") is None


async def test_post_many_writes_a_page_once_and_skips_what_was_posted(store: Store) -> None:
    assert await store.ledger_post_many([]) == 0
    assert await store.ledger_post(posting("m0", 7))
    page = [posting(f"m{i}", 10 + i, rrn=f"00000000000{i}") for i in range(5)]
    page[0] = posting("m0", 7)
    assert await store.ledger_post_many(page) == 4
    assert await store.ledger_post_many([*page, page[1]]) == 0  # a replay, and a repeat within
    entries = await store.ledger_entries("EUR")
    assert sorted(e.posting_id for e in entries) == sorted(f"m{i}" for i in range(5) for _ in "ab")
    assert sum(e.amount_minor for e in entries) == 0
    assert [p.posting_id for p in await store.ledger_postings_for_rrn("000000000003")] == ["m3"]


async def test_post_many_checks_every_posting_before_writing(store: Store) -> None:
    bad = LedgerPosting("bad", "tx", "K", "", "EUR", NOW, (LedgerLine("a", "EUR", 10),))
    with pytest.raises(UnbalancedPosting):
        await store.ledger_post_many([posting("ok1"), bad])
    assert await store.ledger_get("ok1") is None
    await store.ledger_post(posting("c1", 1000))
    with pytest.raises(PostingConflict):
        await store.ledger_post_many([posting("c1", 999)])
    assert [e.amount_minor for e in await store.ledger_entries("EUR")] == [1000, -1000]


async def test_concurrent_pages_of_the_same_postings_write_once(store: Store, open_more) -> None:
    other = await open_more()
    page = [posting(f"q{i}", 100 + i) for i in range(20)]
    written = await asyncio.gather(*(s.ledger_post_many(page) for s in (store, other)))
    assert sum(written) == 20
    assert len(await store.ledger_entries("EUR")) == 40


async def _follow(page, limit: int) -> list:
    out, cursor = [], ""
    for _ in range(100):
        found, cursor = await page(cursor, limit)
        out += found
        if not cursor:
            return out
    raise AssertionError("the cursor never ended")


async def test_pages_read_what_the_lists_read_across_days(store: Store) -> None:
    for n in range(5):
        await store.ledger_post(posting(f"d{n}", 10 + n, at=NOW + 86_400 * (n % 3) + n))
        await store.recon_upsert(issue(f"i{n}"), NOW + 86_400 * (n % 2) + n)
        await store.dispute_create(
            Dispute(f"cb-{n}", "tx", "000000000001", "M", "A", "I", 5, "EUR", "10.4",
                    DisputeState.CHARGEBACK, NOW + 86_400 * (n % 3), NOW + 99, updated_at=NOW)
        )  # fmt: skip
    await store.recon_set_status("i3", IssueStatus.IGNORED, "n/a", NOW + 9)
    until = NOW + 86_400
    for limit in (1, 2, 1000):
        got = await _follow(lambda c, n: store.ledger_entries_page("EUR", None, c, n), limit)
        assert got == await store.ledger_entries("EUR")
        got = await _follow(lambda c, n: store.ledger_entries_page("EUR", until, c, n), limit)
        assert got == await store.ledger_entries("EUR", until) and len(got) == 4
        got = await _follow(lambda c, n: store.recon_issues_page(None, c, n), limit)
        assert got == await store.recon_issues() and len(got) == 5
        opened = await _follow(lambda c, n: store.recon_issues_page(IssueStatus.OPEN, c, n), limit)
        assert [i.issue_id for i in opened] == ["i0", "i2", "i4", "i1"]
        got = await _follow(lambda c, n: store.disputes_page(None, c, n), limit)
        assert got == await store.disputes() and len(got) == 5


async def test_a_page_refuses_a_bad_limit_or_cursor(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.recon_issues_page(None, "", 0)
    with pytest.raises(ValueError, match="cursor"):
        await store.disputes_page(None, "not a cursor", 10)
    with pytest.raises(ValueError, match="cursor"):
        await store.ledger_entries_page("EUR", None, "[1, 2]", 10)


async def test_disputes_of_a_sale(store: Store) -> None:
    for n, tx in enumerate(("tx-a", "tx-b", "tx-a")):
        await store.dispute_create(
            Dispute(f"cb-{n}", tx, "000000000001", "M", "A", "I", 5 + n, "EUR", "10.4",
                    DisputeState.CHARGEBACK, NOW + n, NOW + 99, updated_at=NOW)
        )  # fmt: skip
    assert [d.dispute_id for d in await store.disputes_of("tx-a")] == ["cb-0", "cb-2"]
    assert await store.disputes_of("tx-none") == []
