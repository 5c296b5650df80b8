"""The reconciliation job and ``payswitch-recon``: issues stored with a status, re-runs list
nothing twice, an operator's resolution sticks; the report prints each currency with its own
exponent and as JSON."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from ledgerkit import DAY0, FEES
from reconkit import build_day

from switch.backoffice.recon.job import run
from switch.backoffice.recon.report import render_text
from switch.domain.ledger import IssueStatus

REPO = Path(__file__).resolve().parents[2]


def write_report(tmp: Path, report: dict) -> None:
    path = tmp / "settlement" / report["acquirer_id"] / f"{report['file_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))


async def test_reruns_list_nothing_twice_and_resolutions_stick(store, tmp_path: Path) -> None:
    day = await build_day(store, tmp_path)
    report = day.report
    s1, s3 = day.sales["s1"].rrn, day.sales["s3"].rrn
    for e in report["entries"]:
        if e["rrn"] == s1:
            e["amount_minor"] += 1
    report["entries"] = [e for e in report["entries"] if e["rrn"] != s3]
    write_report(tmp_path, report)
    kw = dict(reports_dir=tmp_path, books=[day.books_path], fee_table=FEES, cutoff=DAY0 + 60)
    first = await run(store, now=DAY0 + 86_400, **kw)
    assert first.new == 2
    assert sorted((i.type, i.rrn) for i in first.found) == [
        ("AMOUNT_MISMATCH", s1), ("MISSING_AT_ACQUIRER", s3)
    ]  # fmt: skip
    second = await run(store, now=DAY0 + 2 * 86_400, **kw)
    assert second.new == 0 and len(await store.recon_issues()) == 2
    mismatch = next(i for i in second.found if i.type == "AMOUNT_MISMATCH")
    assert mismatch.last_seen == DAY0 + 2 * 86_400 and mismatch.first_seen == DAY0 + 86_400
    await store.recon_set_status(mismatch.issue_id, IssueStatus.IGNORED, "rounding", DAY0)
    third = await run(store, now=DAY0 + 3 * 86_400, **kw)
    assert third.new == 0
    assert {i.type: i.status for i in third.found} == {
        "AMOUNT_MISMATCH": IssueStatus.IGNORED, "MISSING_AT_ACQUIRER": IssueStatus.OPEN
    }  # fmt: skip


async def test_text_report_uses_each_currencys_exponent(store, tmp_path: Path) -> None:
    day = await build_day(store, tmp_path)
    for e in day.report["entries"]:
        e["amount_minor"] += 1  # EUR 100.01, KWD 1.251 ...
    write_report(tmp_path, day.report)
    result = await run(store, reports_dir=tmp_path, books=[day.books_path], cutoff=DAY0 + 60)
    text = render_text(result.found)
    assert "1.250" in text and "1.251" in text  # KWD: three decimals
    assert "100.00" in text and "100.01" in text  # EUR: two
    header, *rows, total = text.splitlines()
    assert header.split() == [
        "ID",
        "STATUS",
        "TYPE",
        "KIND",
        "RRN",
        "TRANSACTION",
        "CUR",
        "SWITCH",
        "ACQUIRER",
        "ISSUER",
        "NOTE",
    ]
    assert total == "4 issue(s)"
    assert len({len(r.split("  ")[0]) for r in rows}) == 1  # ids aligned


def cli(store_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "switch.cli.recon", "--store", store_url, *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_cli_run_list_resolve(store, store_url: str, tmp_path: Path) -> None:
    day = await build_day(store, tmp_path)
    day.report["entries"].append(dict(day.report["entries"][0]))  # a duplicate
    write_report(tmp_path, day.report)
    topology = tmp_path / "topology.toml"
    topology.write_text(
        "".join(
            f'[[fees]]\nscheme = "{r.scheme}"\nmcc = "{r.mcc}"\ncurrency = "{r.currency}"\n'
            f"interchange_bps = {r.interchange_bps}\ninterchange_fixed_minor = "
            f"{r.interchange_fixed_minor}\nscheme_fee_bps = {r.scheme_fee_bps}\n"
            f"scheme_fee_fixed_minor = {r.scheme_fee_fixed_minor}\n\n"
            for r in FEES
        )
    )
    args = ["run", "--dir", str(tmp_path), "--books", str(day.books_path),
            "--topology", str(topology), "--cutoff", str(DAY0 + 60), "--json"]  # fmt: skip
    done = await asyncio.to_thread(cli, store_url, *args)
    assert done.returncode == 1, done.stderr  # open issues
    [issue] = json.loads(done.stdout)
    assert (issue["type"], issue["status"], issue["detail"]["count"]) == ("DUPLICATE", "OPEN", 2)
    again = await asyncio.to_thread(cli, store_url, *args)
    assert [i["issue_id"] for i in json.loads(again.stdout)] == [issue["issue_id"]]
    resolved = await asyncio.to_thread(
        cli, store_url, "resolve", issue["issue_id"], "--status", "RESOLVED", "--note", "refunded"
    )
    assert resolved.returncode == 0, resolved.stderr
    listed = await asyncio.to_thread(cli, store_url, "list", "--status", "RESOLVED")
    assert issue["issue_id"] in listed.stdout and "refunded" in listed.stdout
    refused = await asyncio.to_thread(
        cli, store_url, "resolve", issue["issue_id"], "--status", "IGNORED", "--note", "x"
    )
    assert refused.returncode == 2 and "not OPEN" in refused.stderr
    final = await asyncio.to_thread(cli, store_url, *args)
    assert final.returncode == 0  # the only issue is resolved


async def test_the_streamed_run_finds_what_one_comparison_over_whole_lists_finds(
    store, tmp_path: Path, monkeypatch
) -> None:
    """Issue 17: the job compares in RRN slices of a scratch workspace; with one RRN a slice
    (every rule across a slice boundary) the issues and their details are the engine's over
    whole lists, and the workspace is gone afterwards."""
    import math

    from switch.backoffice.recon import workspace
    from switch.backoffice.recon.engine import reconcile
    from switch.backoffice.recon.sources import read_books, switch_transactions

    day = await build_day(store, tmp_path)
    report = day.report
    s1, s2, s3 = (day.sales[n].rrn for n in ("s1", "s2", "s3"))
    for e in report["entries"]:
        if e["rrn"] == s1:
            e["amount_minor"] += 1
    report["entries"] = [e for e in report["entries"] if e["rrn"] != s3]
    report["entries"].append(dict(next(e for e in report["entries"] if e["rrn"] == s2)))
    report["entries"].append(dict(report["entries"][0], rrn="999999999999", transaction_id="x"))
    write_report(tmp_path, report)
    want = reconcile(
        await switch_transactions(store, math.inf),
        [report],
        read_books([day.books_path]),
        cutoff=DAY0 + 60,
        fee_table=FEES,
        disputes=await store.disputes(),
    )
    monkeypatch.setattr(workspace, "SLICE", 1)
    work = tmp_path / "work"
    work.mkdir()
    result = await run(
        store, reports_dir=tmp_path, books=[day.books_path], fee_table=FEES,
        cutoff=DAY0 + 60, now=DAY0 + 86_400, work_dir=work,
    )  # fmt: skip
    got = [(i.issue_id, i.type, i.kind, i.rrn, i.transaction_id, i.detail) for i in result.found]
    assert got == [(i.issue_id, i.type, i.kind, i.rrn, i.transaction_id, i.detail) for i in want]
    assert len(got) >= 4 and result.new == len(got)
    assert result.rows is not None and result.rows.acquirer == len(report["entries"])
    assert sum(result.by_type.values()) == len(got)
    assert list(work.iterdir()) == []


def test_the_workspace_is_owner_only_and_a_dead_runs_is_swept(tmp_path: Path) -> None:
    import stat

    from switch.backoffice.recon.workspace import PREFIX, Workspace

    dead = tmp_path / f"{PREFIX}4194305-left"  # above Linux's pid_max: no such process
    dead.mkdir()
    ws = Workspace(tmp_path)
    try:
        assert stat.S_IMODE(ws.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(ws.dir.stat().st_mode) == 0o700
        assert not dead.exists()
    finally:
        ws.close()
    assert list(tmp_path.iterdir()) == []


_CRASHING_RECON = """
import sys
from switch.backoffice.recon import job
from switch.cli.recon import main
job.ISSUE_PAGE = 1
raise SystemExit(main(sys.argv[1:]))
"""


async def test_a_run_killed_between_pages_of_issues_then_rerun_stores_the_same_issues(
    store, store_url: str, tmp_path: Path
) -> None:
    import os

    day = await build_day(store, tmp_path)
    report = day.report
    s1, s3 = day.sales["s1"].rrn, day.sales["s3"].rrn
    for e in report["entries"]:
        if e["rrn"] == s1:
            e["amount_minor"] += 1
    report["entries"] = [e for e in report["entries"] if e["rrn"] != s3]
    report["entries"].append(dict(report["entries"][0], rrn="999999999999", transaction_id="x"))
    write_report(tmp_path, report)
    work = tmp_path / "work"
    work.mkdir()
    args = ["--store", store_url, "run", "--dir", str(tmp_path), "--books", str(day.books_path),
            "--cutoff", str(DAY0 + 60), "--work-dir", str(work), "--summary"]  # fmt: skip
    env = {**os.environ, "PAYSWITCH_CRASH_AT": "recon.page:2"}
    killed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CRASHING_RECON, *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert len(await store.recon_issues()) == 2  # two pages of one issue were stored
    assert len(list(work.iterdir())) == 1  # the killed run's workspace, left behind
    env.pop("PAYSWITCH_CRASH_AT")
    rerun = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CRASHING_RECON, *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert rerun.returncode == 1, rerun.stderr
    summary = json.loads(rerun.stdout)["recon"]
    assert summary["found"] == 3 and summary["new"] == 1
    assert summary["issues"] == {"AMOUNT_MISMATCH": 1, "MISSING_AT_ACQUIRER": 1,
                                 "MISSING_IN_SWITCH": 1}  # fmt: skip
    assert len(await store.recon_issues()) == 3
    assert list(work.iterdir()) == []  # swept and cleaned
