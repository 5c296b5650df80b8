"""``cassandra://`` store URLs: contact points, keyspace, replication and consistency levels.

    cassandra://host1,host2[:port]/keyspace?replication=3&consistency=QUORUM&serial=SERIAL

Options (all optional):

- ``replication=N`` (default 3): replicas per data centre, used only when the keyspace does not
  exist yet (NetworkTopologyStrategy {dc: N}); an existing keyspace is never altered.
- ``consistency=`` (default QUORUM): level of every read, plain write and LWT commit.
  ``LOCAL_QUORUM`` for a multi-DC cluster; ``ONE`` is only for a single dev node (RF 1).
- ``serial=`` (default SERIAL): level of the Paxos phase of every LWT and of the SERIAL reads
  that resolve a CAS of unknown outcome; ``LOCAL_SERIAL`` with ``LOCAL_QUORUM``.
- ``dc=`` (default datacenter1): the local data centre for DCAwareRoundRobinPolicy.
- ``timeout=`` seconds (default 3): client-side timeout per request. Above Cassandra's own write
  timeout (2 s), so the server usually answers first and says what happened.
- ``connect_timeout=`` seconds (default 5).

The store refuses (at open) a consistency level that cannot read its own writes on the
keyspace's replication factor (R + W <= RF): the idempotency and CAS reasoning depends on it.
A single dev node: ``cassandra://127.0.0.1/payswitch?replication=1`` (QUORUM of one replica is
that replica), or spelled out ``?replication=1&consistency=ONE&serial=LOCAL_SERIAL``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import parse_qsl, urlsplit

DEFAULT_PORT = 9042
DEFAULT_DC = "datacenter1"

CONSISTENCY_LEVELS = (
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
)
SERIAL_LEVELS = ("SERIAL", "LOCAL_SERIAL")

_DC = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # goes into CQL text (keyspace replication)
# Unquoted CQL identifiers, at most 48 characters (Cassandra's keyspace name limit).
_KEYSPACE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


@dataclass(frozen=True, slots=True)
class CassandraConfig:
    hosts: tuple[str, ...]
    port: int
    keyspace: str
    replication: int = 3
    consistency: str = "QUORUM"
    serial: str = "SERIAL"
    dc: str = DEFAULT_DC
    timeout_s: float = 3.0
    connect_timeout_s: float = 5.0

    def replicas_needed(self, rf: int) -> int:
        """How many replicas answer at ``consistency`` for a keyspace of replication ``rf``."""
        fixed = {"ONE": 1, "LOCAL_ONE": 1, "TWO": 2, "THREE": 3, "ALL": rf}
        return fixed.get(self.consistency, rf // 2 + 1)


class _Options(TypedDict, total=False):
    """The optional ``CassandraConfig`` fields a URL's query may give."""

    replication: int
    consistency: str
    serial: str
    dc: str
    timeout_s: float
    connect_timeout_s: float


def _hosts(netloc: str, url: str) -> tuple[tuple[str, ...], int]:
    hosts: list[str] = []
    ports: set[int] = set()
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [IPv6]:port
            host, _, rest = part[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_text = part.partition(":")
        if port_text:
            try:
                ports.add(int(port_text))
            except ValueError:
                raise ValueError(f"bad port {port_text!r} in {url!r}") from None
        hosts.append(host)
    if not hosts:
        raise ValueError(f"Cassandra store URL {url!r} names no contact point")
    if len(ports) > 1:
        raise ValueError(f"Cassandra contact points must share one port: {url!r}")
    return tuple(hosts), ports.pop() if ports else DEFAULT_PORT


def _float(name: str, value: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if not result > 0:
        raise ValueError(f"{name} must be > 0")
    return result


def parse_url(url: str) -> CassandraConfig:
    """The configuration a ``cassandra://`` URL names; ValueError when malformed."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "cassandra":
        raise ValueError(f"not a cassandra:// URL: {url!r}")
    hosts, port = _hosts(parts.netloc, url)
    keyspace = parts.path.strip("/").lower()  # unquoted CQL identifiers are case-insensitive
    if not _KEYSPACE.fullmatch(keyspace):
        raise ValueError(
            f"Cassandra store URL {url!r} needs a keyspace: cassandra://host/keyspace "
            "(letters, digits and _, starting with a letter, at most 48 characters)"
        )
    options: _Options = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "replication":
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"replication must be a positive integer, not {value!r}")
            options["replication"] = int(value)
        elif name == "consistency":
            if value.upper() not in CONSISTENCY_LEVELS:
                raise ValueError(f"consistency must be one of {CONSISTENCY_LEVELS}, not {value!r}")
            options["consistency"] = value.upper()
        elif name == "serial":
            if value.upper() not in SERIAL_LEVELS:
                raise ValueError(f"serial must be one of {SERIAL_LEVELS}, not {value!r}")
            options["serial"] = value.upper()
        elif name == "dc":
            if not _DC.fullmatch(value):
                raise ValueError(f"dc must name a data centre (letters, digits, _ . -): {value!r}")
            options["dc"] = value
        elif name == "timeout":
            options["timeout_s"] = _float(name, value)
        elif name == "connect_timeout":
            options["connect_timeout_s"] = _float(name, value)
        else:
            raise ValueError(
                f"unknown Cassandra store option {name!r} (known: replication, consistency, "
                "serial, dc, timeout, connect_timeout)"
            )
    return CassandraConfig(hosts=hosts, port=port, keyspace=keyspace, **options)
