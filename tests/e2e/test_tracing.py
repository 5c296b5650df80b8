"""One authorization traced across real processes: the terminal SDK, the switch, the acquirer,
the scheme and the issuer each write their spans to their own file; together they are one
trace, correctly parented, with every pipeline stage, HSM jobs and store calls; the waterfall
command prints it; the log lines of the request carry its trace id; no card data in any span
file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest

from payswitch import tracing, waterfall
from payswitch.v1 import network_pb2, network_pb2_grpc
from payswitch.world.topology import all_nodes
from terminals.sdk import Terminal

from .clients import node_channel
from .conftest import DEFAULT_TOPOLOGY, injected, start_stack

pytestmark = pytest.mark.e2e

PAN, EXPIRY, PIN = "4111111111111111", "2812", "1234"
STAGES = (
    *("admit", "validate", "verify", "claim", "route", "decrypt", "receive", "intent"),
    *("risk", "forward", "standin", "record", "answer"),
)


def _json_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


HOSTILE_TRACE = "5e1f00c0ffee00c0ffee00c0ffee00c0"


async def _refused_call(stack) -> grpc.StatusCode:
    """An acquirer's certificate calling an issuer directly (network.authz refuses it), with a
    sampled ``traceparent``: the refusal must come before any span."""
    issuer, acquirer = stack.topology.issuers[0].id, stack.topology.acquirers[0].id
    channel = node_channel(stack, issuer, as_node=acquirer)
    try:
        await network_pb2_grpc.IssuerServiceStub(channel).Authorize(
            network_pb2.NetworkAuthorization(rrn="990000000001"),
            timeout=5,
            metadata=(("traceparent", f"00-{HOSTILE_TRACE}-00f067aa0ba902b7-01"),),
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    finally:
        await channel.close()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
async def traced_sale(tmp_path_factory, hsm_token):
    run_dir = tmp_path_factory.mktemp("traced")
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    doc["tracing"] = {"enabled": True, "sample_ratio": 1.0}
    stack = await asyncio.to_thread(start_stack, run_dir, doc)
    tp = tracing.provider("terminal", run_dir / "traces", 1.0)
    try:
        terminal = Terminal(
            stack.address(stack.topology.switch.id),
            "T-0001",
            "M-GROCER",
            credentials=stack.terminal_credentials("T-0001"),
            secure_element=await injected("T-0001"),
            tracer_provider=tp,
        )
        async with terminal:
            result = await terminal.pay(2000, "EUR", PAN, EXPIRY, pin=PIN)
        refused = await _refused_call(stack)
    finally:
        tp.shutdown()  # the terminal's spans written
        await asyncio.to_thread(stack.stop)  # every process flushes its spans as it exits
    return run_dir, stack, result, refused


async def test_one_authorization_is_one_trace_across_every_process(traced_sale):
    run_dir, stack, result, _refused = traced_sale
    assert result.approved
    [tree] = waterfall.find(waterfall.load(run_dir / "traces"), rrn=result.rrn)
    trace_ids = {s.trace_id for s in tree}
    assert len(trace_ids) == 1
    by_id = {s.span_id: s for s in tree}
    root = tree[0]
    assert root.service == "terminal" and root.name == "terminal.pay" and root.parent_id is None
    for s in tree[1:]:
        assert s.parent_id in by_id, s  # every span's parent is in the same tree
    topo = stack.topology
    sw = topo.switch.id
    services = {s.service for s in tree}
    # Server spans, hop by hop: each one's parent is its caller's client span.
    servers = [s for s in tree if s.kind == "server"]
    chain = [s.service for s in sorted(servers, key=lambda s: s.start_ns)]
    assert chain[0] == sw
    kinds = {i: k for k, i, _ in all_nodes(topo)}
    assert [kinds[n] for n in chain[1:]] == ["acquirer", "scheme", "issuer"]
    callers = ["terminal", *chain[:-1]]
    for server, caller in zip(sorted(servers, key=lambda s: s.start_ns), callers, strict=True):
        parent = by_id[server.parent_id]
        assert parent.kind == "client" and parent.service == caller
        assert parent.name == server.name  # the same RPC, both sides
    assert services == {"terminal", *chain}
    # Every pipeline stage, under the switch's authorize span.
    [authorize] = [s for s in tree if s.name == "authorize"]
    stages = [s for s in tree if s.parent_id == authorize.span_id]
    assert [s.name for s in sorted(stages, key=lambda s: s.start_ns)] == list(STAGES)
    assert authorize.attrs["payswitch.rrn"] == result.rrn
    assert authorize.attrs["payswitch.tx_id"] == result.transaction_id
    assert authorize.attrs["payswitch.response_code"] == "00"
    # HSM jobs and store calls, each under a stage of the switch; HSM at the acquirer (PIN).
    hsm = [s for s in tree if s.name.startswith("hsm ")]
    store = [s for s in tree if s.name.startswith("store ")]
    assert {s.service for s in hsm} >= {sw}
    assert any(kinds.get(s.service) == "acquirer" for s in hsm)
    assert store and all(s.service == sw for s in store)
    stage_ids = {s.span_id for s in stages}
    assert {by_id[s.parent_id].name for s in store} <= set(STAGES)
    assert all(s.parent_id in stage_ids for s in store)
    # The SDK's root span measured the whole: every other span lies inside it.
    assert all(root.start_ns <= s.start_ns and s.end_ns <= root.end_ns for s in tree)


async def test_log_lines_of_the_request_carry_its_trace_id(traced_sale):
    run_dir, stack, result, _refused = traced_sale
    [tree] = waterfall.find(waterfall.load(run_dir / "traces"), rrn=result.rrn)
    trace_id = tree[0].trace_id
    sw = stack.topology.switch.id
    lines = [x for x in _json_lines(stack.log_path(sw)) if x.get("event") == "authorize"]
    [line] = [x for x in lines if x.get("tx") == result.transaction_id]
    assert line["trace_id"] == trace_id
    assert line["span_id"] in {s.span_id for s in tree}
    for node in {s.service for s in tree} - {"terminal", sw}:
        hop_lines = [x for x in _json_lines(stack.log_path(node)) if x.get("rrn") == result.rrn]
        assert hop_lines and all(x["trace_id"] == trace_id for x in hop_lines), node


def _trace_cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "payswitch.waterfall", "--run-dir", str(run_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


async def test_waterfall_command_prints_the_authorization(traced_sale):
    run_dir, _stack, result, _refused = traced_sale
    by_rrn = await asyncio.to_thread(_trace_cli, run_dir, "--rrn", result.rrn)
    assert by_rrn.returncode == 0, by_rrn.stderr
    text = by_rrn.stdout
    for name in (*STAGES, "terminal.pay", "authorize", "/payswitch.v1.TerminalService/Authorize"):
        assert name in text
    by_tx = await asyncio.to_thread(_trace_cli, run_dir, "--tx", result.transaction_id, "--json")
    [tree] = json.loads(by_tx.stdout)
    assert tree["spans"][0]["name"] == "terminal.pay" and tree["spans"][0]["depth"] == 0
    assert len(tree["spans"]) == len(text.splitlines()) - 2
    missing = await asyncio.to_thread(_trace_cli, run_dir, "--rrn", "999999999999")
    assert missing.returncode == 1 and "no trace" in missing.stderr


async def test_span_files_hold_no_card_data_and_are_owner_only(traced_sale):
    run_dir, stack, _result, _refused = traced_sale
    doc = tomllib.loads(stack.topology_path.read_text())
    pans = [c["pan"] for i in doc["issuers"] for c in i.get("cards", [])]
    files = list((run_dir / "traces").glob("*.jsonl*"))
    assert len(files) >= 5
    assert (run_dir / "traces").stat().st_mode & 0o777 == 0o700
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600, f
        raw = f.read_bytes()
        for pan in pans:
            assert pan.encode() not in raw, f
        for rec in map(json.loads, raw.splitlines()):
            for key, value in rec["attrs"].items():
                assert key.startswith("payswitch.") or key.startswith("rpc."), key
                assert value not in (PIN, EXPIRY), (key, value)


async def test_a_caller_the_node_refuses_makes_no_span(traced_sale):
    run_dir, _stack, _result, refused = traced_sale
    assert refused is grpc.StatusCode.PERMISSION_DENIED
    spans = waterfall.load(run_dir / "traces")
    assert spans and not [s for s in spans if s.trace_id == HOSTILE_TRACE]
