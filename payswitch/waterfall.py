"""``payswitch-trace``: one authorization as a waterfall, from the span files of every process.

    payswitch-trace --run-dir .run --rrn 634100000017
    payswitch-trace --run-dir .run --tx 4f1c... --json

Reads ``<run-dir>/traces/*.jsonl*`` (``payswitch.tracing`` writes one per process), finds the
spans that name the transaction (``payswitch.rrn`` / ``payswitch.tx_id``: the terminal SDK's
span and the switch's ``authorize``), climbs to their root and prints that root's tree: each
span indented under its parent with its start offset from the root, its duration, its process
and a bar. Only that tree: a caller that reused another request's trace id (the id is the
terminal's to choose) shares the trace id but not the tree, and is left out. A line that does
not parse (a process killed mid-write) is skipped. Exit 1 when nothing matches.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

SPAN_FILE_GLOB = "*.jsonl*"
BAR = 32
_SHOWN = ("response_code", "rrn", "tx_id", "stan", "hsm.token", "outcome")


@dataclass(frozen=True, slots=True)
class SpanRec:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _parse(line: bytes) -> SpanRec | None:
    try:
        d = orjson.loads(line)
        return SpanRec(
            trace_id=str(d["trace_id"]),
            span_id=str(d["span_id"]),
            parent_id=str(d["parent_id"]) if d.get("parent_id") else None,
            name=str(d["name"]),
            kind=str(d.get("kind", "")),
            service=str(d.get("service", "")),
            start_ns=int(d["start_ns"]),
            end_ns=int(d["end_ns"]),
            status=str(d.get("status", "")),
            attrs=dict(d.get("attrs") or {}),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def load(directory: Path) -> list[SpanRec]:
    """Every span of every span file in ``directory``."""
    spans = []
    for path in sorted(directory.glob(SPAN_FILE_GLOB)):
        with path.open("rb") as fh:
            for line in fh:
                rec = _parse(line)
                if rec is not None:
                    spans.append(rec)
    return spans


def _matches(s: SpanRec, rrn: str | None, tx: str | None, trace_id: str | None) -> bool:
    if rrn is not None and s.attrs.get("payswitch.rrn") == rrn:
        return True
    if tx is not None and s.attrs.get("payswitch.tx_id") == tx:
        return True
    return trace_id is not None and s.trace_id == trace_id.lower()


def find(
    spans: Iterable[SpanRec],
    *,
    rrn: str | None = None,
    tx: str | None = None,
    trace_id: str | None = None,
) -> list[list[SpanRec]]:
    """The trees holding the matching spans, each as a list in display order (depth first,
    children by start), earliest tree first."""
    by_trace: dict[str, list[SpanRec]] = defaultdict(list)
    for s in spans:
        by_trace[s.trace_id].append(s)
    trees = []
    for members in by_trace.values():
        anchors = [s for s in members if _matches(s, rrn, tx, trace_id)]
        if not anchors:
            continue
        ids = {s.span_id: s for s in members}
        roots: dict[str, SpanRec] = {}
        for a in anchors:
            node, seen = a, set()
            while node.parent_id is not None and node.parent_id in ids and node.span_id not in seen:
                seen.add(node.span_id)
                node = ids[node.parent_id]
            roots[node.span_id] = node
        children: dict[str | None, list[SpanRec]] = defaultdict(list)
        for s in members:
            children[s.parent_id].append(s)
        for root in roots.values():
            trees.append(_flatten(root, children))
    trees.sort(key=lambda t: t[0].start_ns)
    return trees


def _flatten(root: SpanRec, children: dict[str | None, list[SpanRec]]) -> list[SpanRec]:
    out: list[SpanRec] = []
    stack = [root]
    seen: set[str] = set()
    while stack:
        node = stack.pop()
        if node.span_id in seen:
            continue
        seen.add(node.span_id)
        out.append(node)
        stack.extend(sorted(children.get(node.span_id, []), key=lambda s: -s.start_ns))
    return out


def depths(tree: Sequence[SpanRec]) -> list[int]:
    level: dict[str, int] = {}
    out = []
    for s in tree:
        d = level.get(s.parent_id, -1) + 1 if s.parent_id is not None else 0
        level[s.span_id] = d
        out.append(d)
    return out


def _label(s: SpanRec) -> str:
    extra = []
    for key in _SHOWN:
        value = s.attrs.get(f"payswitch.{key}")
        if value not in (None, ""):
            extra.append(f"{key}={value}")
    code = s.attrs.get("rpc.grpc.status_code")
    if code not in (None, 0):
        extra.append(f"grpc={code}")
    kind = f" ({s.kind})" if s.kind in ("client", "server") else ""
    return s.name + kind + (f"  [{' '.join(extra)}]" if extra else "")


def render(tree: Sequence[SpanRec]) -> str:
    """The tree as text: offset and duration in ms, process, indented name, bar."""
    t0 = tree[0].start_ns
    total = max(max(s.end_ns for s in tree) - t0, 1)
    services = {s.service for s in tree}
    width = max(len(s) for s in services)
    lines = [
        f"trace {tree[0].trace_id}: {len(tree)} spans, {len(services)} processes, "
        f"{total / 1e6:.2f} ms",
        f"{'start ms':>9} {'dur ms':>8}  {'process':<{width}}  span",
    ]
    for s, depth in zip(tree, depths(tree), strict=True):
        lo = int((s.start_ns - t0) * BAR / total)
        hi = max(lo + 1, int((s.end_ns - t0) * BAR / total))
        bar = "." * lo + "#" * (hi - lo) + "." * (BAR - hi)
        lines.append(
            f"{(s.start_ns - t0) / 1e6:9.2f} {s.ms:8.2f}  {s.service:<{width}}  |{bar}|  "
            f"{'  ' * depth}{_label(s)}"
        )
    return "\n".join(lines)


def as_json(tree: Sequence[SpanRec]) -> dict[str, Any]:
    t0 = tree[0].start_ns
    return {
        "trace_id": tree[0].trace_id,
        "spans": [
            {
                "span_id": s.span_id,
                "parent_id": s.parent_id,
                "depth": d,
                "name": s.name,
                "kind": s.kind,
                "service": s.service,
                "start_ms": round((s.start_ns - t0) / 1e6, 3),
                "duration_ms": round(s.ms, 3),
                "status": s.status,
                "attrs": s.attrs,
            }
            for s, d in zip(tree, depths(tree), strict=True)
        ],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-trace", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run-dir", default=".run", help="the stack's run dir (spans in traces/)")
    where.add_argument("--dir", default=None, help="a folder of span files")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--rrn", help="the authorization's RRN")
    which.add_argument("--tx", help="the switch's transaction id")
    which.add_argument("--trace", dest="trace_id", help="a trace id (32 hex digits)")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    directory = Path(args.dir) if args.dir else Path(args.run_dir) / "traces"
    if not directory.is_dir():
        sys.exit(f"payswitch-trace: no span folder {directory} (is [tracing] enabled?)")
    trees = find(load(directory), rrn=args.rrn, tx=args.tx, trace_id=args.trace_id)
    if not trees:
        sys.exit("payswitch-trace: no trace names that transaction (sampled out, or not flushed)")
    if args.json:
        sys.stdout.write(orjson.dumps([as_json(t) for t in trees]).decode() + "\n")
    else:
        sys.stdout.write("\n\n".join(render(t) for t in trees) + "\n")


if __name__ == "__main__":
    main()
