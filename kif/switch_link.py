"""The KIF's registrations reach the switch: ``AdminService.RegisterDevice`` on its admin port.

Why an RPC and not a write into the switch's store: the KIF runs away from the transaction
host and holds no store credentials; the admin port is already the operators' authenticated
way in (mTLS with an admin certificate when the switch runs TLS). The switch keeps the device
bound to that terminal on every process of its store; under ``[switch] device_binding =
"registered"`` it serves no other device.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from payswitch import tls
from payswitch.v1 import admin_pb2, admin_pb2_grpc

TIMEOUT_S = 10.0


class SwitchRefused(RuntimeError):
    """The switch did not take the registration (its status code and message, no key)."""


def register_at_switch(
    address: str, ikid: str, terminal_id: str, certs_dir: str | Path | None = None
) -> bool:
    """Register ``ikid`` to ``terminal_id`` at the switch; True when new there."""
    if certs_dir is not None:
        channel = grpc.secure_channel(address, tls.admin_credentials(certs_dir))
    else:
        channel = grpc.insecure_channel(address)
    try:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        request = admin_pb2.RegisterDeviceRequest(ikid=ikid, terminal_id=terminal_id)
        reply = stub.RegisterDevice(request, timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() is not None else "UNKNOWN"
        raise SwitchRefused(f"switch refused the registration: {code} {exc.details()}") from None
    finally:
        channel.close()
    return bool(reply.created)
