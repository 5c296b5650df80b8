"""The switch offers gRPC health checking and server reflection (grpcurl, ghz, debugging)."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

pytestmark = pytest.mark.e2e


async def test_switch_reports_serving(stack, channels):
    stub = health_pb2_grpc.HealthStub(channels[stack.topology.switch.id])
    for service in ("", "payswitch.v1.TerminalService"):
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_and_describes_the_terminal_service(stack, channels):
    stub = reflection_pb2_grpc.ServerReflectionStub(channels[stack.topology.switch.id])

    async def ask(**kw):
        call = stub.ServerReflectionInfo(timeout=2.0)
        await call.write(reflection_pb2.ServerReflectionRequest(**kw))
        await call.done_writing()
        return await call.read()

    listed = await ask(list_services="")
    names = {s.name for s in listed.list_services_response.service}
    assert "payswitch.v1.TerminalService" in names
    assert "grpc.health.v1.Health" in names
    described = await ask(file_containing_symbol="payswitch.v1.TerminalService")
    assert described.file_descriptor_response.file_descriptor_proto


async def test_unknown_health_service_is_not_found(stack, channels):
    stub = health_pb2_grpc.HealthStub(channels[stack.topology.switch.id])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest(service="nope.Service"), timeout=2.0)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
