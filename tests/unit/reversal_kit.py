"""What the reversal handler's unit tests share: a fast SAF configuration and a scripted acquirer
that answers every reversal with one response code and remembers what it was asked (their real
SQLite store is ``tests/unit/conftest.py``'s ``store``)."""

from __future__ import annotations

from payswitch.v1 import common_pb2, network_pb2
from payswitch.world.topology import SafConfig

FAST = SafConfig(max_attempts=2, base_delay_s=0.001, max_delay_s=0.002, poll_interval_s=0.02)


class ScriptedAcquirer:
    """Answers every reversal with ``code``; ``reversed`` lists the original RRNs sent."""

    def __init__(self, code: int = common_pb2.RESPONSE_CODE_APPROVED) -> None:
        self.code = code
        self.reversed: list[str] = []

    async def reverse(self, msg, timeout):
        self.reversed.append(msg.original_rrn)
        return network_pb2.NetworkAdviceResult(rrn=msg.original_rrn, response_code=self.code)

    def get(self, _acquirer_id):
        return self
