"""Outgoing channels of a forwarding node: one per next-hop node, made once per process, with the
node's own network certificate (mTLS) unless the topology's network is plaintext."""

from __future__ import annotations

import grpc

from payswitch.tls import aio_channel

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # Each node's reconnect should be quick after a restart of the next hop.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


class Channels:
    """Lazily made, then reused, loopback channels keyed by target address; ``credentials``
    None means plaintext ([network] tls off)."""

    def __init__(self, credentials: grpc.ChannelCredentials | None = None) -> None:
        self._credentials = credentials
        self._by_target: dict[str, grpc.aio.Channel] = {}

    def get(self, target: str, server: tuple[str, str]) -> grpc.aio.Channel:
        """The channel to ``target``, where node ``server`` (kind, id) must answer (mTLS)."""
        channel = self._by_target.get(target)
        if channel is None:
            channel = aio_channel(target, self._credentials, _CHANNEL_OPTIONS, server)
            self._by_target[target] = channel
        return channel

    async def close(self) -> None:
        for channel in self._by_target.values():
            await channel.close()
        self._by_target.clear()
