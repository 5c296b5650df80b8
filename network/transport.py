"""A node process's transport security: mTLS credentials from its own certificate folder, or
plaintext when the topology's ``[network] tls`` is off (tests and benchmarks only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from payswitch import logs, tls
from payswitch.certs import CertDir

_log = logs.get("network.transport")


@dataclass(frozen=True, slots=True)
class NodeTls:
    """``server``: the node's port; ``client``: what it dials its next hop (or the issuer's
    back office) with. Both None in plaintext mode."""

    server: grpc.ServerCredentials | None
    client: grpc.ChannelCredentials | None

    @property
    def on(self) -> bool:
        return self.server is not None

    @classmethod
    def plaintext(cls) -> NodeTls:
        return cls(None, None)

    @classmethod
    def from_dir(cls, process_dir: str | Path) -> NodeTls:
        """The node's folder (``payswitch-certs``: ``<certs>/nodes/<id>``); OSError if a file
        is missing, so a node without its certificate does not start (fail closed)."""
        return cls(
            tls.network_server_credentials(process_dir), tls.network_client_credentials(process_dir)
        )

    @classmethod
    def of_node(cls, enabled: bool, certs_root: str | Path | None, node_id: str) -> NodeTls:
        """Node ``node_id``'s credentials under a whole certificate folder (in-process nets)."""
        if not enabled:
            return cls.plaintext()
        if certs_root is None:
            raise OSError(f"{node_id}: [network] tls is on and no certificate folder was given")
        return cls.from_dir(CertDir(certs_root).node_dir(node_id).root)


def warn_plaintext(node_id: str) -> None:
    """Said loudly at start: nothing authenticates this process's callers or peers."""
    _log.warning(
        "PLAINTEXT_NETWORK",
        node=node_id,
        detail="[network] tls = false: hops are unauthenticated and unencrypted; "
        "for tests and benchmarks only",
    )
