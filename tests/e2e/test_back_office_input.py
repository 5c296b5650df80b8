"""The back offices' settlement RPCs against hostile input (real processes): a file id that
would write a report outside its folder is refused before the books are touched, and an
unreadable clearing path is answered in the same words whatever the cause, so the answer
tells nothing about the node's disk. Each call comes from the party that may make it (an
acquirer presents to an issuer, the switch settles with an acquirer), so what is tested is the
input check behind the caller check."""

import grpc
import pytest

from payswitch.v1 import settlement_pb2, settlement_pb2_grpc

from .clients import node_channel

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("file_id", ["../../../../escaped", "a/b", "..", ".hidden", "x" * 129])
async def test_present_refuses_a_file_id_that_is_not_a_plain_name(stack, tmp_path, file_id):
    channel = node_channel(stack, "bank-a", as_node="acq-alpha")
    stub = settlement_pb2_grpc.IssuerSettlementServiceStub(channel)
    reports = tmp_path / "reports"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Present(
            settlement_pb2.PresentRequest(
                file_id=file_id, acquirer_id="acq-alpha", report_dir=str(reports)
            ),
            timeout=5.0,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("file_id")
    assert not any(tmp_path.rglob("*"))  # nothing written, inside the folder or out of it
    await channel.close()


async def test_settle_says_the_same_whatever_makes_a_clearing_path_unreadable(stack, tmp_path):
    channel = node_channel(stack, "acq-alpha", as_node=stack.topology.switch.id)
    stub = settlement_pb2_grpc.AcquirerSettlementServiceStub(channel)
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_bytes(b"\xff\xfe not text")
    answers = set()
    for path in (tmp_path / "missing.jsonl", tmp_path, garbled):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Settle(
                settlement_pb2.SettleRequest(
                    clearing_path=str(path), report_dir=str(tmp_path / "reports")
                ),
                timeout=5.0,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        answers.add(err.value.details())
    assert answers == {"clearing_path: cannot read clearing file"}
    await channel.close()


async def test_a_cut_off_clock_ahead_of_the_node_is_refused_before_anything_moves(stack, tmp_path):
    """``ExpireHolds`` in 2100 would release every hold; ``Present`` would flag every
    presentment late. Each back office refuses a clock ahead of its own, naming ``now_ms``,
    even from the caller entitled to make the call."""
    year_2100_ms = 4_102_444_800_000
    reports = tmp_path / "reports"
    switch_id = stack.topology.switch.id
    as_switch = node_channel(stack, "bank-a", as_node=switch_id)
    as_acquirer = node_channel(stack, "bank-a", as_node="acq-alpha")
    to_acquirer = node_channel(stack, "acq-alpha", as_node=switch_id)
    calls = [
        settlement_pb2_grpc.IssuerSettlementServiceStub(as_switch).ExpireHolds(
            settlement_pb2.ExpireHoldsRequest(now_ms=year_2100_ms, report_dir=str(reports)),
            timeout=5.0,
        ),
        settlement_pb2_grpc.IssuerSettlementServiceStub(as_acquirer).Present(
            settlement_pb2.PresentRequest(
                file_id="f1", acquirer_id="acq-alpha", now_ms=year_2100_ms, report_dir=str(reports)
            ),
            timeout=5.0,
        ),
        settlement_pb2_grpc.AcquirerSettlementServiceStub(to_acquirer).Settle(
            settlement_pb2.SettleRequest(
                clearing_path=str(tmp_path / "any.jsonl"),
                report_dir=str(reports),
                now_ms=year_2100_ms,
            ),
            timeout=5.0,
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("now_ms: more than 300 s ahead")
    assert not any(tmp_path.rglob("*"))
    for channel in (as_switch, as_acquirer, to_acquirer):
        await channel.close()
