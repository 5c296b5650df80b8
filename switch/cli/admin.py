"""``payswitch-admin``: the operator's command line for one switch's AdminService.

    payswitch-admin terminals list
    payswitch-admin terminals revoke T-0002 --reason "reported stolen"
    payswitch-admin terminals reinstate T-0002
    payswitch-admin saf list [--dead] [--limit N]
    payswitch-admin saf replay ITEM_ID
    payswitch-admin circuits

The address comes from ``--admin`` or the topology's ``[switch] admin_listen``; with
``[switch] tls`` the admin client certificate (``<certs-dir>/admin.pem``) is presented.

``--store URL`` works on the state store directly instead, for ``saf`` only: the queue and its
dead letters can be listed and replayed with no switch running (a crashed switch, a switch
without an admin port); a live switch's worker picks a replayed item up on its next poll.
``--json`` prints one JSON object per item instead of the aligned line. This is the one
operator tool for the queue; ``python -m switch.cli.saf`` only delegates here.

Exit status: 0 done, 1 the switch (or store) refused or could not be reached, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import structlog

from payswitch import tls
from payswitch.process import connect_address, private_files
from payswitch.v1 import admin_pb2, admin_pb2_grpc
from payswitch.world.topology import TopologyError, load
from switch.api.admin import saf_item

DEFAULT_TOPOLOGY = Path(__file__).resolve().parents[1] / "topology" / "default.toml"


def _when(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminal(t: admin_pb2.TerminalEntry) -> str:
    state = f"REVOKED {_when(t.revoked_at_ms)} {t.revoke_reason!r}" if t.revoked else "active"
    return f"{t.terminal_id:<12} {t.merchant_id:<14} {state}"


def _item_json(i: admin_pb2.SafItem) -> str:
    fields = (
        "id",
        "kind",
        "transaction_id",
        "attempts",
        "created_at_ms",
        "next_attempt_at_ms",
        "last_error",
        "dead",
    )
    return json.dumps({f: getattr(i, f) for f in fields}, sort_keys=True)


def _item(i: admin_pb2.SafItem) -> str:
    dead = " DEAD" if i.dead else ""
    return (
        f"{i.id:<34} {i.kind:<9} tx={i.transaction_id} attempts={i.attempts} "
        f"next={_when(i.next_attempt_at_ms)}{dead} {i.last_error}"
    )


def _circuit(c: admin_pb2.Circuit) -> str:
    return (
        f"{c.acquirer_id:<12} {c.state:<10} failures={c.consecutive_failures} "
        f"error_rate={c.error_rate:.2f} opened={_when(c.opened_at_ms)}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="payswitch-admin", description=__doc__.splitlines()[0])
    p.add_argument("--topology", default=str(DEFAULT_TOPOLOGY))
    p.add_argument("--admin", default=None, help="host:port (default: [switch] admin_listen)")
    p.add_argument("--certs-dir", default=".run/certs", help="admin certificate directory")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--store", default=None, help="saf only: work on this store URL directly")
    p.add_argument("--json", action="store_true", help="saf: one JSON object per item")
    sub = p.add_subparsers(dest="area", required=True)
    term = sub.add_parser("terminals").add_subparsers(dest="action", required=True)
    term.add_parser("list")
    revoke = term.add_parser("revoke")
    revoke.add_argument("terminal_id")
    revoke.add_argument("--reason", default="")
    term.add_parser("reinstate").add_argument("terminal_id")
    saf = sub.add_parser("saf").add_subparsers(dest="action", required=True)
    listing = saf.add_parser("list")
    listing.add_argument("--dead", action="store_true", help="dead letters")
    listing.add_argument("--limit", type=int, default=100)
    saf.add_parser("replay").add_argument("item_id")
    sub.add_parser("circuits")
    risk = sub.add_parser("reviews").add_subparsers(dest="action", required=True)
    risk.add_parser("list").add_argument("--limit", type=int, default=100)
    resolve = risk.add_parser("resolve")
    resolve.add_argument("transaction_id")
    verdict = resolve.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--fraud", action="store_true", help="confirmed: block the card")
    verdict.add_argument("--false-positive", action="store_true", help="not fraud: allow the card")
    return p.parse_args(argv)


def _review(r: admin_pb2.RiskReview) -> str:
    return (
        f"{r.transaction_id}  score {r.score:<4} {','.join(r.reasons):<32} "
        f"card {r.card_token[:12]}...  since {_when(r.created_at_ms)}"
    )


class Refused(Exception):
    """What the store refused, worded as the AdminService would (``NAME: details``)."""


async def _on_store(args: argparse.Namespace) -> list[admin_pb2.SafItem]:
    """``saf list`` / ``saf replay`` on the store itself, through the switch's own queue."""
    from switch.recovery.saf import SafQueue
    from switch.store import open_store

    async with open_store(args.store) as store:
        queue = SafQueue(store)
        if args.action == "list":
            return [saf_item(i) for i in await queue.list_items(args.dead, args.limit)]
        try:
            return [saf_item(await queue.replay(args.item_id))]
        except KeyError:
            raise Refused("NOT_FOUND: no such store-and-forward item") from None
        except ValueError:
            raise Refused("FAILED_PRECONDITION: item is not a dead letter") from None


def _store_main(args: argparse.Namespace) -> None:
    if args.area != "saf":
        print("payswitch-admin: --store works for saf only", file=sys.stderr)
        sys.exit(2)
    # stdout carries the items; the queue's own log lines go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    try:
        items = asyncio.run(_on_store(args))
    except Refused as exc:
        print(f"payswitch-admin: {exc}", file=sys.stderr)
        sys.exit(1)
    lines = [_item_json(i) if args.json else _item(i) for i in items]
    _print(args, lines)


def _call(stub: admin_pb2_grpc.AdminServiceStub, args: argparse.Namespace) -> list[str]:
    t = args.timeout
    key = (args.area, getattr(args, "action", ""))
    show = _item_json if args.json else _item
    calls: dict[tuple[str, str], Callable[[], list[str]]] = {
        ("terminals", "list"): lambda: [
            _terminal(x)
            for x in stub.ListTerminals(admin_pb2.ListTerminalsRequest(), timeout=t).terminals
        ],
        ("terminals", "revoke"): lambda: [
            _terminal(
                stub.RevokeTerminal(
                    admin_pb2.RevokeTerminalRequest(
                        terminal_id=args.terminal_id, reason=args.reason
                    ),
                    timeout=t,
                ).terminal
            )
        ],
        ("terminals", "reinstate"): lambda: [
            _terminal(
                stub.ReinstateTerminal(
                    admin_pb2.ReinstateTerminalRequest(terminal_id=args.terminal_id), timeout=t
                ).terminal
            )
        ],
        ("saf", "list"): lambda: [
            show(i)
            for i in stub.ListSafItems(
                admin_pb2.ListSafItemsRequest(dead_letters=args.dead, limit=args.limit), timeout=t
            ).items
        ],
        ("saf", "replay"): lambda: [
            show(
                stub.ReplayDeadLetter(
                    admin_pb2.ReplayDeadLetterRequest(item_id=args.item_id), timeout=t
                ).item
            )
        ],
        ("reviews", "list"): lambda: [
            _review(r)
            for r in stub.ListRiskReviews(
                admin_pb2.ListRiskReviewsRequest(limit=args.limit), timeout=t
            ).reviews
        ],
        ("reviews", "resolve"): lambda: [
            (lambda done: f"{_review(done.review)}  -> {done.list} list")(
                stub.ResolveRiskReview(
                    admin_pb2.ResolveRiskReviewRequest(
                        transaction_id=args.transaction_id,
                        verdict=admin_pb2.RISK_VERDICT_FRAUD
                        if args.fraud
                        else admin_pb2.RISK_VERDICT_FALSE_POSITIVE,
                    ),
                    timeout=t,
                )
            )
        ],
        ("circuits", ""): lambda: [
            _circuit(c)
            for c in stub.ListCircuits(admin_pb2.ListCircuitsRequest(), timeout=t).circuits
        ],
    }
    return calls[key]()


def main(argv: list[str] | None = None) -> None:
    private_files()
    args = parse_args(argv)
    if args.store:
        _store_main(args)
        return
    try:
        sw = load(args.topology).switch
    except (OSError, TopologyError) as exc:
        sys.exit(f"payswitch-admin: {exc}")
    address = args.admin or (connect_address(sw.admin_listen) if sw.admin_listen else "")
    if not address:
        print("payswitch-admin: no --admin and no [switch] admin_listen", file=sys.stderr)
        sys.exit(2)
    try:
        if sw.tls:
            channel = grpc.secure_channel(address, tls.admin_credentials(args.certs_dir))
        else:
            channel = grpc.insecure_channel(address)
    except OSError as exc:
        sys.exit(f"payswitch-admin: admin certificate: {exc}")
    with channel:
        try:
            lines = _call(admin_pb2_grpc.AdminServiceStub(channel), args)
        except grpc.RpcError as err:
            print(f"payswitch-admin: {err.code().name}: {err.details()}", file=sys.stderr)
            sys.exit(1)
    _print(args, lines)


def _print(args: argparse.Namespace, lines: list[str]) -> None:
    """The lines; an empty listing says so in words (``--json`` prints nothing for it)."""
    for line in lines:
        print(line)
    if not lines and not args.json and (args.area, getattr(args, "action", "")) == ("saf", "list"):
        print("no dead letters" if args.dead else "no store-and-forward items waiting")


if __name__ == "__main__":
    main()
