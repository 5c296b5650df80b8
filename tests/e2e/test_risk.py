"""The risk stage end to end: two switch processes on one Cassandra keyspace with
``[risk] enabled``, every node a real process, the real HSM and gRPC over loopback.

The patterns come from the simulated network's generator (``payswitch.world.fraud``): card
testing and a cloned card in two countries. One velocity is shared by both processes (a card
over its limit across both is stopped); a shadow set runs beside the live one and only
counts; a changed rule file is picked up by the running switches. One stack for all of it:
the tests run in file order and the last one changes the live rules.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from payswitch.world import fraud
from switch.store.cassandra.store import CassandraStore

from .clients import RawTerminal, code, node_channels, switch_channel
from .conftest import (
    DEFAULT_TOPOLOGY,
    cassandra_keyspace,
    cassandra_node,
    drop_keyspace,
    injected,
    start_stack,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RULES = Path(__file__).resolve().parents[2] / "topology" / "risk" / "rules-v1.toml"
DECLINE_ALL = (
    'version = "decline-all"\n[thresholds]\ndecline = 1\n'
    '[[rules]]\nid = "everything"\nwhen = "true"\nscore = 1\nmessage = "no"\n'
)


@pytest.fixture(scope="module")
async def risk_stack(tmp_path_factory, hsm_token):
    host, keyspace = await asyncio.to_thread(cassandra_keyspace, "e2e_risk")
    url = f"cassandra://{host}:{cassandra_node.PORT}/{keyspace}?replication=1"
    run_dir = tmp_path_factory.mktemp("risk")
    live, shadow = run_dir / "rules-live.toml", run_dir / "rules-shadow.toml"
    live.write_text(RULES.read_text())
    shadow.write_text(DECLINE_ALL)
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    # A wide slice: on a loaded two-core machine a Cassandra round trip can take tens of ms,
    # and these tests are about the rules (the fallback has its own test, with the store slow).
    doc["risk"].update(
        enabled=True, rules=str(live), shadow_rules=str(shadow), reload_s=0.2, slice_ms=1000
    )
    stack = await asyncio.to_thread(start_stack, run_dir, doc, store=url, switches=2)
    channels = node_channels(stack)
    store = CassandraStore(url)
    await store.open()
    try:
        yield stack, channels, store, live
    finally:
        await store.close()
        for ch in channels.values():
            await ch.close()
        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(drop_keyspace, host, keyspace)


@pytest.fixture(scope="module")
async def grocer(risk_stack) -> list[RawTerminal]:
    """T-0001 (a grocer in DE) reaching either switch process."""
    stack, channels, _, _ = risk_stack
    se = await injected("T-0001")
    return [RawTerminal(channels[s], se) for s in stack.switch_ids]


@pytest.fixture(scope="module")
async def fuel(risk_stack) -> RawTerminal:
    """T-0003 (a fuel station in FR) on the second switch process."""
    stack, _, _, _ = risk_stack
    channel = switch_channel(stack, "T-0003", stack.switch_ids[1])
    yield RawTerminal(channel, await injected("T-0003"), "T-0003", "M-FUEL")
    await channel.close()


def _samples(address: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_velocity_is_shared_by_both_switch_processes(grocer, risk_stack) -> None:
    _, _, store, _ = risk_stack
    pan, expiry = "5555555555554444", "2906"
    answers = []
    for i in range(6):  # alternating: each process alone sees three of them
        t = grocer[i % 2]
        answers.append(await t.authorize(t.auth_request(pan, 1000, expiry=expiry)))
    assert [code(a) for a in answers[:5]] == ["00"] * 5
    stepped = answers[5]
    assert code(stepped) == "65" and stepped.pin_required
    assert stepped.risk_reason == "card_velocity"
    record = await store.get_risk_decision(stepped.transaction_id)
    assert (record.action, record.code, record.rules_version) == ("step_up", "65", "rules-v1")
    t = grocer[0]
    with_pin = await t.authorize(t.auth_request(pan, 1000, expiry=expiry, pin="4321"))
    assert code(with_pin) == "00" and not with_pin.pin_required


async def test_card_testing_from_the_generator_is_declined_59(grocer, risk_stack) -> None:
    _, _, store, _ = risk_stack
    attempts = fraud.card_testing("6011111111111117", "T-0001", start=0.0, attempts=5)
    answers = []
    for i, p in enumerate(attempts):
        t = grocer[i % 2]
        req = t.auth_request(p.card, p.amount, expiry="2903")
        answers.append((req, await t.authorize(req)))
    codes_seen = [code(a) for _, a in answers]
    assert codes_seen[:2] == ["00"] * 2 and set(codes_seen[2:]) == {"59"}
    req, declined = answers[2]
    assert declined.risk_reason == "card_testing" and declined.message == "suspected card testing"
    # The answer's risk fields are under its response MAC, checked with the terminal's key.
    assert grocer[1].answer_verifies("authorize", req.encrypted_card.ksn, declined)
    record = await store.get_risk_decision(declined.transaction_id)
    assert record.reasons[0] == "card_testing" and record.code == "59"
    assert record.shadow_version == "decline-all" and record.shadow_action == "decline"


async def test_a_cloned_card_in_two_countries_is_declined(grocer, fuel, risk_stack) -> None:
    home, away = fraud.cloned_card("378282246310005", ("T-0001", "T-0003"), start=0.0)[:2]
    first = await grocer[0].authorize(grocer[0].auth_request(home.card, home.amount, expiry="2903"))
    assert code(first) == "00"
    clone = await fuel.authorize(fuel.auth_request(away.card, away.amount, expiry="2903"))
    assert code(clone) == "59" and clone.risk_reason == "impossible_travel"


async def test_shadow_decisions_are_counted_never_acted_on(risk_stack) -> None:
    stack, _, _, _ = risk_stack
    live: dict[str, float] = {}
    shadow: dict[str, float] = {}
    for s in stack.switch_ids:
        samples = await asyncio.to_thread(_samples, stack.metrics_address(s))
        for (name, labels), value in samples.items():
            if name == "payswitch_risk_decisions_total":
                got = dict(labels)
                into = live if got["ruleset"] == "live" else shadow
                into[got["action"]] = into.get(got["action"], 0) + value
    # Every request above was also decided by the shadow set (decline-all), none acted on:
    # eight were approved (the five paid on two processes, two tries, the cardholder at home).
    assert live.get("approve", 0) == 8
    assert shadow == {"decline": sum(live.values())}


async def test_the_risk_tables_hold_no_pan(risk_stack) -> None:
    """Tokens, ids and reason codes only: no cell of any table (the risk stage's counters,
    sightings and decisions included) holds a PAN used above."""
    from .test_cassandra_switches import _every_value

    _, _, store, _ = risk_stack
    url = store.config
    values = await asyncio.to_thread(_every_value, url.hosts[0], url.keyspace)
    texts = [bytes(v).decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    assert any(t.startswith("c:") for t in texts)  # the counters' card subjects are there
    for pan in ("5555555555554444", "6011111111111117", "378282246310005"):
        assert not [t for t in texts if pan in t]


async def test_a_changed_rule_file_reaches_the_running_switches(grocer, risk_stack) -> None:
    stack, _, store, live = risk_stack
    live.write_text(DECLINE_ALL)
    key = ("payswitch_risk_reloads_total", (("outcome", "loaded"), ("ruleset", "live")))
    deadline = time.monotonic() + 20
    for s in stack.switch_ids:  # wait for the watcher's reload (metric), bounded
        while (await asyncio.to_thread(_samples, stack.metrics_address(s))).get(key, 0) < 1:
            assert time.monotonic() < deadline, f"{s} did not reload its rules"
            await asyncio.sleep(0.1)  # polling a condition, not waiting a fixed time
    for t in grocer:
        answer = await t.pay("4111111111111111", 700)
        assert code(answer) == "59" and answer.risk_reason == "everything"
        record = await store.get_risk_decision(answer.transaction_id)
        assert record.rules_version == "decline-all"
