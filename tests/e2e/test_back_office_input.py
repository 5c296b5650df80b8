"""The back offices' settlement RPCs against hostile input (real processes): a file id that
would write a report outside its folder is refused before the books are touched, and an
unreadable clearing path is answered in the same words whatever the cause, so the answer
tells nothing about the node's disk."""

import grpc
import pytest

from payswitch.v1 import settlement_pb2, settlement_pb2_grpc

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("file_id", ["../../../../escaped", "a/b", "..", ".hidden", "x" * 129])
async def test_present_refuses_a_file_id_that_is_not_a_plain_name(channels, tmp_path, file_id):
    stub = settlement_pb2_grpc.IssuerSettlementServiceStub(channels["bank-a"])
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


async def test_settle_says_the_same_whatever_makes_a_clearing_path_unreadable(channels, tmp_path):
    stub = settlement_pb2_grpc.AcquirerSettlementServiceStub(channels["acq-alpha"])
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


async def test_a_cut_off_clock_ahead_of_the_node_is_refused_before_anything_moves(
    channels, tmp_path
):
    """``ExpireHolds`` in 2100 would release every hold; ``Present`` would flag every
    presentment late. Each back office refuses a clock ahead of its own, naming ``now_ms``."""
    year_2100_ms = 4_102_444_800_000
    reports = tmp_path / "reports"
    issuer = settlement_pb2_grpc.IssuerSettlementServiceStub(channels["bank-a"])
    acquirer = settlement_pb2_grpc.AcquirerSettlementServiceStub(channels["acq-alpha"])
    calls = [
        issuer.ExpireHolds(
            settlement_pb2.ExpireHoldsRequest(now_ms=year_2100_ms, report_dir=str(reports)),
            timeout=5.0,
        ),
        issuer.Present(
            settlement_pb2.PresentRequest(
                file_id="f1", acquirer_id="acq-alpha", now_ms=year_2100_ms, report_dir=str(reports)
            ),
            timeout=5.0,
        ),
        acquirer.Settle(
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
