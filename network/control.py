"""NodeControlService: set and clear a node's runtime faults while it runs.

A test and simulation facility: the fault-injection harness (``tests/faults``) makes a node
slow, failing or forgetful while payments flow, without restarting it. Every network node
serves it on its own port (``network.server``), which listens on 127.0.0.1 only; with mTLS only
the network operator's certificate may call it (``network.authz``), and in either mode callers
from anywhere but the loopback interface are refused. The switch never serves it.
"""

from __future__ import annotations

import grpc

from network.faults import DropMode, FaultControl, RuntimeFaults
from payswitch import logs
from payswitch.v1 import control_pb2, control_pb2_grpc
from payswitch.world.topology import Latency

SERVICE_NAME = control_pb2.DESCRIPTOR.services_by_name["NodeControlService"].full_name

_DISTRIBUTIONS = {
    control_pb2.LATENCY_DISTRIBUTION_UNSPECIFIED: "fixed",
    control_pb2.LATENCY_DISTRIBUTION_FIXED: "fixed",
    control_pb2.LATENCY_DISTRIBUTION_UNIFORM: "uniform",
    control_pb2.LATENCY_DISTRIBUTION_LOGNORMAL: "lognormal",
}
_LOOPBACK_PEERS = ("ipv4:127.", "ipv6:[::1]", "unix:")

_log = logs.get("network.control")


def _latency(msg: control_pb2.LatencyFault) -> Latency:
    dist = _DISTRIBUTIONS.get(msg.distribution)
    if dist is None:
        raise ValueError("latency.distribution: unknown")
    values = (msg.ms, msg.min_ms, msg.max_ms, msg.median_ms, msg.p99_ms)
    if any(not 0 <= v <= 600_000 for v in values):  # NaN fails too
        raise ValueError("latency: milliseconds must be between 0 and 600000")
    if dist == "uniform" and msg.max_ms < msg.min_ms:
        raise ValueError("latency: max_ms < min_ms")
    if dist == "lognormal" and msg.median_ms > 0 and msg.p99_ms < msg.median_ms:
        raise ValueError("latency: p99_ms < median_ms")
    return Latency(dist, msg.ms, msg.min_ms, msg.max_ms, msg.median_ms, msg.p99_ms)


def from_proto(spec: control_pb2.FaultSpec) -> RuntimeFaults:
    """Validated runtime faults; ValueError names the offending field."""
    fail_status = grpc.StatusCode.UNAVAILABLE
    fail_code = None
    which = spec.fail.WhichOneof("answer")
    if which == "grpc_status":
        by_number = {s.value[0]: s for s in grpc.StatusCode}
        if spec.fail.grpc_status not in by_number:
            raise ValueError("fail.grpc_status: not a gRPC status code")
        fail_status = by_number[spec.fail.grpc_status]
    elif which == "response_code":
        fail_code = spec.fail.response_code
    drop_mode = DropMode.HOLD if spec.drop.mode == control_pb2.DROP_MODE_HOLD else DropMode.ABORT
    return RuntimeFaults(
        latency=_latency(spec.latency),
        latency_rate=spec.latency.rate if spec.latency.HasField("rate") else 1.0,
        fail_rate=spec.fail.rate,
        fail_status=fail_status,
        fail_code=fail_code,
        drop_rate=spec.drop.rate,
        drop_mode=drop_mode,
        operations=frozenset(spec.operations),
        seed=spec.seed if spec.HasField("seed") else None,
    )


class NodeControlServicer(control_pb2_grpc.NodeControlServiceServicer):
    def __init__(self, control: FaultControl) -> None:
        self._control = control

    async def _loopback_only(self, context: grpc.aio.ServicerContext) -> None:
        if not context.peer().startswith(_LOOPBACK_PEERS):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "fault control: loopback only")

    async def SetFaults(
        self, request: control_pb2.SetFaultsRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.SetFaultsResponse:
        await self._loopback_only(context)
        try:
            faults = from_proto(request.faults)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"faults.{exc}")
        self._control.set(faults)
        _log.warning(
            "faults_set",
            fail_rate=faults.fail_rate,
            drop_rate=faults.drop_rate,
            latency=faults.latency.distribution,
            operations=sorted(faults.operations),
        )
        return control_pb2.SetFaultsResponse(node_id=self._control.node_id)

    async def ClearFaults(
        self, request: control_pb2.ClearFaultsRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ClearFaultsResponse:
        await self._loopback_only(context)
        self._control.clear()
        _log.info("faults_cleared")
        return control_pb2.ClearFaultsResponse(node_id=self._control.node_id)
