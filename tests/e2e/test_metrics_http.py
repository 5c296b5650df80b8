"""/metrics over HTTP from a real switch process: requests by code (answers and API errors),
stage histograms after a few authorizations, and no card data anywhere in the exposition."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payswitch.v1 import terminal_pb2

from .clients import RawTerminal, code
from .conftest import injected, start_stack

pytestmark = pytest.mark.e2e

APPROVED = "4111111111111111"
INSUFFICIENT = "4000000000000002"  # 51 above 15.00


@pytest.fixture(scope="module")
async def metrics_stack(tmp_path_factory, hsm_token):
    s = await asyncio.to_thread(start_stack, tmp_path_factory.mktemp("metrics"), store="sqlite")
    try:
        yield s
    finally:
        await asyncio.to_thread(s.stop)


def _scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_show_requests_by_code_and_stage_times_without_card_data(metrics_stack):
    stack = metrics_stack
    se = await injected()
    pos = RawTerminal.connect(stack, se, "T-0001", "M-GROCER")
    impostor = RawTerminal.connect(stack, se, "T-0002", "M-GROCER")
    pans = {c.pan for i in stack.topology.issuers for c in i.cards}
    try:
        for minor in (100, 200, 300):
            assert code(await pos.pay(APPROVED, minor)) == "00"
        declined = await pos.pay(INSUFFICIENT, 2000)
        assert code(declined) != "00"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await impostor.stub.Echo(
                terminal_pb2.EchoRequest(terminal_id="T-0001", message="x"), timeout=2.0
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await pos.channel.close()
        await impostor.channel.close()

    text = await asyncio.to_thread(_scrape, stack.metrics_address())
    samples = _samples(text)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("payswitch_requests_total", rpc="Authorize", code="00") == 3
    assert value("payswitch_requests_total", rpc="Authorize", code=code(declined)) == 1
    assert value("payswitch_requests_total", rpc="Echo", code="PERMISSION_DENIED") == 1
    stage_counts = {
        dict(labels)["stage"]: v
        for (name, labels), v in samples.items()
        if name == "payswitch_stage_seconds_count"
    }
    assert len(stage_counts) >= 3, stage_counts
    first = next(iter(stage_counts))
    assert stage_counts[first] == 4  # every authorization passed the first stage
    assert all(v >= 1 for v in stage_counts.values())
    # No PAN, masked or not, in the exposition.
    assert not any(p in text for p in pans)
    assert not re.search(r"\d{6}\*+\d{4}", text)
    assert not re.search(r"(?<![\d.e+-])\d{13,19}(?![\d.])", text)
