"""Per-hop times from the servers' own records: what the switch adds on top of the network.

The switch logs one JSON line per authorization (``event: authorize``, ``tx``, ``ms`` = its
whole pipeline); each network node logs one per request (``event: authorize``, ``rrn``, ``ms``
= its whole hop, onward calls and injected latency included). The generator saw both the
transaction id and the RRN in each answer, so per request:

    switch-added = switch ms - acquirer ms

is the switch's own work plus its call to the acquirer, without the simulated network. A bare
forwarder's added time is measured the same way (its handler time minus the next hop's), so
the two are comparable: the switch's *own* cost is the difference of the two.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from benchmarks import stats
from benchmarks.phases import Phase

_AUTHORIZATIONS = frozenset(("approve", "pin", "decline"))  # first sends, not retries


def _lines(path: Path, needle: bytes) -> Iterator[dict[str, Any]]:
    try:
        f = path.open("rb")
    except OSError:
        return
    with f:
        for line in f:
            if needle in line and line.startswith(b"{"):
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue


def switch_ms_by_tx(log: Path) -> dict[str, float]:
    """Pipeline time per transaction id of first (not replayed) authorizations."""
    out: dict[str, float] = {}
    for rec in _lines(log, b'"authorize"'):
        if rec.get("event") == "authorize" and not rec.get("replayed") and rec.get("tx"):
            out[rec["tx"]] = float(rec["ms"])
    return out


def node_ms_by_rrn(logs: Iterable[Path]) -> dict[str, float]:
    """Hop time per RRN of the nodes' ``authorize`` lines (reversals, captures excluded)."""
    out: dict[str, float] = {}
    for log in logs:
        for rec in _lines(log, b'"authorize"'):
            if rec.get("event") == "authorize" and rec.get("rrn"):
                out[rec["rrn"]] = float(rec["ms"])
    return out


def switch_added(
    phase: Phase, switch_ms: dict[str, float], acquirer_ms: dict[str, float]
) -> dict[str, Any]:
    """Distributions of switch ms, acquirer ms and their difference for one phase's requests."""
    r = phase.rec
    sw, acq, added = [], [], []
    for status, method_kind, tx, rrn in zip(r.status, r.kind, r.tx, r.rrn, strict=True):
        if status != "OK" or method_kind not in _AUTHORIZATIONS or not tx:
            continue
        s = switch_ms.get(tx)
        a = acquirer_ms.get(rrn) if rrn else None
        if s is None or a is None:
            continue
        sw.append(s)
        acq.append(a)
        added.append(s - a)
    return {
        "joined": len(added),
        "switch_ms": stats.summary(sw),
        "acquirer_ms": stats.summary(acq),
        "switch_added_ms": stats.summary(added),
    }


def forwarder_added(phase: Phase, records: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per forwarder: its handler time minus the next process's, per request of this phase."""
    names = [*sorted(n for n in records if n.startswith("fwd")), "echo"]
    keys = set(phase.rec.key)
    out: dict[str, Any] = {}
    pooled: list[float] = []
    for here, onward in itertools.pairwise(names):
        mine, theirs = records.get(here, {}), records.get(onward, {})
        diffs = [mine[k] - theirs[k] for k in keys if k in mine and k in theirs]
        out[here] = stats.summary(diffs)
        pooled.extend(diffs)
    out["all_forwarders"] = stats.summary(pooled)
    return out
