"""What the admission limit samples from an authorization: the switch's own time, without the
wait for the acquirer (``AuthContext.downstream_s``, set by the "forward" stage), so a slow
acquirer does not shrink the switch's limit."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_failover_pipeline import Connectors, Scripted, code, world  # noqa: F401
from test_pipeline_card_security import ctx, request

from switch.wire.errors import ApiError

LATENCY_S = 0.05


class Slow(Scripted):
    """An acquirer that takes LATENCY_S to answer (simulated network time)."""

    async def authorize(self, msg, timeout, prepare=None):
        await asyncio.sleep(LATENCY_S)
        return await super().authorize(msg, timeout, prepare)


async def test_the_wait_for_the_acquirer_is_kept_apart_from_the_switchs_own_time(world):  # noqa: F811
    make, store, _ = world
    pipeline, svc = make("approve", "approve")
    svc.connectors = Connectors(**{"acq-alpha": Slow("acq-alpha", "approve", store)})
    c = ctx(request())
    started = time.perf_counter()
    resp = await pipeline.run(c)
    total = time.perf_counter() - started
    assert code(resp) == "00"
    assert LATENCY_S <= c.downstream_s < total


async def test_an_authorization_ended_before_forward_has_no_downstream_time(world):  # noqa: F811
    make, _, _ = world
    pipeline, _ = make("approve", "approve")
    c = ctx(request(amount_minor=0))  # refused at "validate": INVALID_ARGUMENT
    with pytest.raises(ApiError):
        await pipeline.run(c)
    assert c.downstream_s == 0.0
