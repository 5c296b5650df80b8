"""``pos``: a point-of-sale terminal on the command line, over the terminal SDK.

    pos pay 12.50 EUR --card 4111111111111111 --exp 12/28 [--pin - | --pin 1234] [--cvv 123]
    pos pay 12.50 EUR --card 4111111111111111 --exp 12/28 --chip
    pos capture TXID [AMOUNT CUR]
    pos void TXID
    pos refund TXID AMOUNT CUR
    pos status TXID | pos status --key KEY
    pos echo
    pos batch close [--line EUR:visa:2:72.50:1:5.00:1 ...]
    pos wallet-grant NAME 100.00 EUR --issuer bank-a --account A-1001   # a payer wallet
    pos offline-pay 12.50 EUR --wallet NAME   # offline: no switch needed (terminals.offline_cli)
    pos sync [--journal FILE]          # offline journal up, offline trust and limits down

Amounts are major units parsed exactly (``12.5`` EUR is 1250 cents, ``1000`` JPY is 1000 yen;
more decimals than the currency has is an error). The expiry is typed as printed on the card,
MM/YY, and sent as YYMM. STANs persist in a per-terminal state file so that separate ``pos``
runs on one day never repeat one (the switch would decline a repeat with 94).

Card data, PIN and CVV2 never leave in clear: the SDK encrypts them under the terminal's DUKPT
keys, loaded by key injection when the command starts (``terminals.keys``). ``--pin -`` reads
the PIN from stdin (after the card number when ``--card -`` is given too), so it stays out of
the shell history. ``--chip`` reads the simulated card's chip (``terminals.card_sim``, which needs
the topology: ``--topology``) for an ARQC and has it check the issuer's ARPC.

mTLS: pos presents the terminal's own client certificate, as the switch requires with
``[switch] tls``, from ``--certs-dir DIR``, else ``$PAYSWITCH_CERTS_DIR`` (a relative folder is
read from the current directory), else the run's certificates (``.run/certs`` of this
repository, which ``make run`` makes) when they hold this terminal's; ``--plaintext`` (or no
certificates at all) connects in plaintext. pos connects before it does anything else: when no
connection can be made it says why (nothing listening, plaintext to a TLS port, a handshake
refused) and that nothing was sent, without retrying.

Retries across runs: each run is a new device (key injection), so a second ``pos pay`` would
build other bytes. With ``--key K``, ``pos pay`` keeps the request it built before sending it
(``terminals.kept``: ciphertext and enciphered PIN block only, 0600); a later run with the same
key and the same sale resends those very bytes, and the switch replays its first answer, which
is checked against a lookup MAC'd under the new device's keys.

Exit status: 0 when the switch answered (approved or declined), 2 for bad input, 3 when the
switch refused the request, 4 when it could not be reached or was overloaded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import ssl
import sys
from pathlib import Path
from typing import TextIO

import grpc

from hsm.config import REPO_ROOT
from hsm.errors import HsmError
from payswitch import cards, money
from payswitch.v1 import common_pb2, terminal_pb2
from terminals import receipt
from terminals.batch import format_close, parse_line
from terminals.chip import CardChips, simulated_reader
from terminals.errors import (
    AccessDenied,
    InvalidRequest,
    NotConnected,
    NotFound,
    Overloaded,
    Refused,
    ResponseUntrusted,
    SwitchUnavailable,
    TerminalError,
)
from terminals.kept import KeptError, KeptRequests, KeptSale
from terminals.retry import RetryPolicy
from terminals.sdk import (
    DEFAULT_DEADLINE_S,
    EntryMode,
    Prepared,
    Terminal,
    terminal_credentials,
)
from terminals.stan import StanCounter, StanStateError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4

DEFAULT_SWITCH = "127.0.0.1:50051"
DEFAULT_TERMINAL = "T-0001"
DEFAULT_MERCHANT = "M-GROCER"
DEFAULT_TOPOLOGY = REPO_ROOT / "topology" / "default.toml"
RUN_CERTS = REPO_ROOT / ".run" / "certs"  # what `make run` makes: the default certificates
PROBE_TIMEOUT_S = 1.0

_EXPIRY = re.compile(r"(0[1-9]|1[0-2])/([0-9]{2}|[0-9]{4})")


class UsageError(ValueError):
    """Bad command-line input, reported in one line with exit status 2."""


def parse_expiry(text: str) -> str:
    """Card expiry as printed, MM/YY (or MM/YYYY), to the wire's YYMM: '12/28' -> '2812'."""
    m = _EXPIRY.fullmatch(text.strip())
    if not m:
        raise UsageError("expiry must be MM/YY, e.g. 12/28")
    return m.group(2)[-2:] + m.group(1)


def parse_amount(text: str, currency: str) -> money.Amount:
    """Exact major-unit parsing with the currency's exponent; never a float."""
    currency = currency.strip().upper()
    try:
        minor = money.parse_major(text, currency)
    except money.MoneyError as exc:
        raise UsageError(str(exc)) from None
    if minor <= 0:
        raise UsageError("amount must be positive")
    return money.Amount(minor, currency)


def default_state_dir() -> Path:
    """$PAYSWITCH_STATE_DIR, else $XDG_STATE_HOME/payswitch, else ~/.local/state/payswitch."""
    if os.environ.get("PAYSWITCH_STATE_DIR"):
        return Path(os.environ["PAYSWITCH_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "payswitch"


def stan_state_path(state_dir: Path, terminal_id: str) -> Path:
    return state_dir / f"terminal-{terminal_id}.stan.json"


def chips_state_path(state_dir: Path) -> Path:
    """The simulated chips' transaction counters (``terminals.card_sim``)."""
    return state_dir / "chips.atc.json"


def choose_certs(given: Path | None, plaintext: bool, terminal_id: str) -> tuple[Path | None, str]:
    """The certificate folder and where it came from: ``--certs-dir``, else
    ``$PAYSWITCH_CERTS_DIR`` (a relative path is read from the current directory, as a shell
    would), else the run's certificates (``.run/certs`` of this repository, which ``make run``
    makes) when they hold this terminal's; otherwise none (plaintext), as ``--plaintext``."""
    if plaintext:
        return None, "--plaintext"
    source = "--certs-dir"
    if given is None and os.environ.get("PAYSWITCH_CERTS_DIR"):
        given, source = Path(os.environ["PAYSWITCH_CERTS_DIR"]), "PAYSWITCH_CERTS_DIR"
    if given is None:
        if (RUN_CERTS / "terminals" / f"{terminal_id}.pem").is_file():
            return RUN_CERTS, "the run's certificates"
        return None, "no certificates found"
    folder = given.expanduser()
    return Path(os.path.abspath(folder)), source


async def _speaks_tls(host: str, port: int) -> bool:
    """Does the port answer a TLS ClientHello? (A probe after a failed connection: it sends
    nothing but the hello, checks no certificate and is closed at once.)"""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a probe of the protocol: nothing is sent, nothing trusted
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx), PROBE_TIMEOUT_S
        )
    except ssl.SSLError as exc:  # an alert (e.g. certificate required) is TLS too
        return "WRONG_VERSION_NUMBER" not in str(exc).upper()
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def diagnose(target: str, certs: Path | None) -> str:
    """Why no connection could be made, in one line for the user."""
    host, _, port_text = target.rpartition(":")
    try:
        port = int(port_text)
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), port), PROBE_TIMEOUT_S
        )
    except (OSError, TimeoutError, ValueError):
        return f"nothing accepts connections on {target}: is `make run` going?"
    writer.close()
    if certs is not None:
        return (
            f"the TLS handshake with {target} failed with the certificates in {certs}: "
            "another run's certificates, or a plaintext switch?"
        )
    if await _speaks_tls(host.strip("[]"), port):
        return (
            f"{target} speaks TLS and pos has no certificates: give --certs-dir DIR or "
            "PAYSWITCH_CERTS_DIR; make run writes .run/certs"
        )
    return f"{target} accepts connections but does not speak gRPC"


def _connection_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The same options on the main parser and on every sub-command, so that they may be
    given before or after it; the sub-command copies only override when given."""

    def d(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--switch",
        default=d(os.environ.get("PAYSWITCH_ADDR") or DEFAULT_SWITCH),
        help=f"switch host:port (default: $PAYSWITCH_ADDR or {DEFAULT_SWITCH})",
    )
    parser.add_argument(
        "--terminal", default=d(DEFAULT_TERMINAL), help=f"default {DEFAULT_TERMINAL}"
    )
    parser.add_argument(
        "--merchant", default=d(DEFAULT_MERCHANT), help=f"default {DEFAULT_MERCHANT}"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=d(DEFAULT_DEADLINE_S),
        help="seconds per attempt (default 2)",
    )
    parser.add_argument(
        "--attempts", type=int, default=d(4), help="attempts on UNAVAILABLE/timeouts (default 4)"
    )
    parser.add_argument(
        "--certs-dir",
        type=Path,
        default=d(None),
        help="mTLS: payswitch-certs directory with this terminal's certificate (default: "
        "$PAYSWITCH_CERTS_DIR, else the run's .run/certs when it has this terminal's)",
    )
    parser.add_argument(
        "--plaintext",
        action="store_true",
        default=d(False),
        help="no TLS (a switch run with [switch] tls = false)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=d(None),
        help="STAN state directory (default: $PAYSWITCH_STATE_DIR or ~/.local/state/payswitch)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pos", description="A POS terminal talking to the payswitch switch."
    )
    _connection_options(p, suppress=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        _connection_options(sp, suppress=True)
        return sp

    pay = cmd("pay", "authorize a sale")
    pay.add_argument("amount", help="major units, e.g. 12.50")
    pay.add_argument("currency", help="ISO 4217 code, e.g. EUR")
    pay.add_argument("--card", required=True, help="card number ('-' reads it from stdin)")
    pay.add_argument("--exp", required=True, help="expiry as on the card, MM/YY")
    pay.add_argument(
        "--pin", help="the cardholder's PIN; '-' reads it from stdin (keeps it out of history)"
    )
    pay.add_argument("--cvv", help="CVV2 as printed on the card (card not present)")
    pay.add_argument(
        "--chip", action="store_true", help="read the (simulated) chip: ARQC out, ARPC checked"
    )
    pay.add_argument(
        "--dcc",
        action="store_true",
        help="offer the cardholder their card's currency (QuoteDcc) and accept the offer shown",
    )
    pay.add_argument(
        "--entry",
        choices=[m.value for m in EntryMode],
        default=None,
        help="how the card was read (default: chip with --chip, else manual: it was typed)",
    )
    pay.add_argument(
        "--topology",
        type=Path,
        default=DEFAULT_TOPOLOGY,
        help="the simulated world, for --chip (default: topology/default.toml)",
    )
    pay.add_argument("--key", help="idempotency key (default: a fresh one)")

    cap = cmd("capture", "capture an approved sale, in full or in part")
    cap.add_argument("transaction_id")
    cap.add_argument("amount", nargs="?", help="major units (default: the full amount)")
    cap.add_argument("currency", nargs="?")
    cap.add_argument("--key", help="idempotency key")

    void = cmd("void", "cancel an approved, uncaptured sale")
    void.add_argument("transaction_id")
    void.add_argument("--key", help="idempotency key")

    ref = cmd("refund", "refund part or all of a captured sale")
    ref.add_argument("transaction_id")
    ref.add_argument("amount")
    ref.add_argument("currency")
    ref.add_argument("--key", help="idempotency key")

    st = cmd("status", "look a transaction up by id or by idempotency key")
    st.add_argument("transaction_id", nargs="?")
    st.add_argument("--key", help="idempotency key that created the transaction")

    echo = cmd("echo", "check that the switch answers")
    echo.add_argument("message", nargs="?", default="ping")

    wg = cmd("wallet-grant", "a payer wallet gets an offline allowance from its issuer")
    wg.add_argument("wallet")
    wg.add_argument("amount", help="the allowance (cumulative cap), major units")
    wg.add_argument("currency")
    wg.add_argument("--issuer", required=True)
    wg.add_argument("--account", required=True, help="the issuer's account id")
    wg.add_argument("--per-tx", help="largest single spend, major units (default: the amount)")

    op = cmd("offline-pay", "take a sale offline from a wallet (no switch needed)")
    op.add_argument("amount")
    op.add_argument("currency")
    op.add_argument("--wallet", required=True)

    sync = cmd("sync", "upload the offline journal and take fresh offline trust and limits")
    sync.add_argument("--journal", type=Path, help="default: <state dir>/<terminal>.offline.db")

    batch = cmd("batch", "batch commands: close")
    batch.add_argument("action", choices=["close"], help="close the open batch")
    batch.add_argument(
        "--line",
        action="append",
        default=[],
        metavar="CUR:SCHEME:SALES:AMOUNT:REFUNDS:AMOUNT:VOIDS",
        help="the terminal's own totals, one per currency and scheme, amounts in major units "
        "(e.g. EUR:visa:2:72.50:1:5.00:1); none: the terminal claims an empty batch",
    )
    batch.add_argument("--key", help="idempotency key")
    return p


def _read_card(value: str, stdin: TextIO) -> str:
    pan = stdin.readline().strip() if value == "-" else value.strip()
    return pan.replace(" ", "")


def _read_pin(value: str | None, stdin: TextIO) -> str | None:
    if value is None:
        return None
    return stdin.readline().strip() if value == "-" else value.strip()


def _chips(args: argparse.Namespace, chips: CardChips | None) -> CardChips:
    """The card simulator for ``--chip`` (it needs the issuers' keys: the shared token)."""
    if chips is not None:
        return chips
    from payswitch.world.topology import TopologyError, load
    from terminals.card_sim import CardSimulator

    try:
        state_dir = args.state_dir or default_state_dir()
        return CardSimulator(load(args.topology), atc_path=chips_state_path(state_dir))
    except (TopologyError, OSError) as exc:
        raise UsageError(f"--topology: {exc}") from None


def _same_sale(
    earlier: KeptSale,
    args: argparse.Namespace,
    amount: money.Amount,
    pan: str,
    entry: str,
    pin: str | None,
) -> bool:
    """Is the sale typed now the one kept under its key? (Else the request is built anew and
    the switch, seeing other content under the key, refuses it.)"""
    r = earlier.request
    return (
        r.terminal_id == args.terminal
        and r.merchant_id == args.merchant
        and (r.amount.minor_units, r.amount.currency) == (amount.minor_units, amount.currency)
        and earlier.masked_pan == cards.mask_pan(pan)
        and common_pb2.EntryMode.Name(r.entry_mode) == f"ENTRY_MODE_{entry.upper()}"
        and bool(r.pin_block) == (pin is not None)
        and r.HasField("emv") == bool(args.chip)
    )


async def _pay(
    args: argparse.Namespace,
    terminal: Terminal,
    stdin: TextIO,
    chips: CardChips | None,
    kept: KeptRequests,
    out: TextIO = sys.stdout,
) -> Prepared | KeptSale:
    """The sale to send: the one kept under ``--key`` when it is the same sale, else a new
    request (kept under ``--key`` before it is sent)."""
    amount = parse_amount(args.amount, args.currency)
    expiry = parse_expiry(args.exp)
    pan = _read_card(args.card, stdin)
    pin = _read_pin(args.pin, stdin)
    entry = args.entry or (EntryMode.CHIP if args.chip else EntryMode.MANUAL).value
    if args.chip and entry not in (EntryMode.CHIP.value, EntryMode.CONTACTLESS.value):
        raise UsageError("--chip needs --entry chip or contactless")
    await terminal.start()  # key injection: a fresh DUKPT key for this run
    earlier = await asyncio.to_thread(kept.load, args.terminal, args.key) if args.key else None
    if earlier is not None and _same_sale(earlier, args, amount, pan, entry, pin):
        return earlier
    emv = card = None
    if args.chip:
        reader = simulated_reader(_chips(args, chips))
        card = reader(pan)
        try:
            emv = await card.generate_arqc(amount.minor_units, amount.currency)
        except ValueError as exc:  # the simulator has no such card (messages carry no PAN)
            raise UsageError(f"--chip: {exc}") from None
    dcc = None
    if getattr(args, "dcc", False):
        offer = await terminal.quote_dcc(amount.minor_units, amount.currency, pan[:6])
        if offer.eligible:  # shown to the cardholder before they choose (rate and markup)
            billed = money.Amount(
                offer.cardholder_amount.minor_units, offer.cardholder_amount.currency
            )
            print(
                f"DCC offer: {billed.format()} at {offer.rate} "
                f"({offer.markup_bps / 100:.2f}% over the scheme's {offer.wholesale_rate}):"
                " accepted",
                file=out,
            )
            dcc = (offer.cardholder_amount.currency, offer.rate)
        else:
            print(f"DCC: {offer.message}; paying in {amount.currency}", file=out)
    prepared = terminal.prepare_pay(
        amount.minor_units,
        amount.currency,
        pan,
        expiry,
        entry,
        args.key,
        pin=pin,
        cvv2=args.cvv,
        emv=emv,
        chip=card,
        dcc=dcc,
    )
    if args.key and earlier is None:
        request = prepared.request
        assert isinstance(request, terminal_pb2.AuthorizeRequest)  # built by prepare_pay
        await asyncio.to_thread(kept.keep, args.terminal, args.key, request, prepared.masked_pan)
    return prepared


async def _offline_pay(args: argparse.Namespace, state_dir: Path, out: TextIO, err: TextIO) -> int:
    from terminals.offline_cli import OfflineUsage, offline_pay

    try:
        amount = parse_amount(args.amount, args.currency)
        line = await asyncio.to_thread(
            offline_pay, state_dir, args.terminal, args.merchant, args.wallet, amount
        )
    except (UsageError, OfflineUsage) as exc:
        print(f"pos: error: {exc}", file=err)
        return EXIT_USAGE
    print(line, file=out)
    return EXIT_OK


def offline_journal_path(state_dir: Path, terminal_id: str) -> Path:
    return state_dir / f"terminal-{terminal_id}.offline.db"


async def _sync(args: argparse.Namespace, terminal: Terminal) -> str:
    """``pos sync``: the offline journal up, trust and limits down (``terminals.offline_sync``)."""
    from terminals.offline import OfflineTerminal
    from terminals.offline_sync import sync

    state_dir = args.state_dir or default_state_dir()
    path = args.journal or offline_journal_path(state_dir, args.terminal)
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = await asyncio.to_thread(OfflineTerminal, path, args.terminal, args.merchant)
    try:
        done = await sync(terminal.offline_stub(), journal, timeout=args.deadline)
        version = (await asyncio.to_thread(journal.trust)).version
    except grpc.aio.AioRpcError as exc:
        raise UsageError(f"sync refused: {exc.code().name}: {exc.details()}") from None
    finally:
        await asyncio.to_thread(journal.close)
    return (
        f"offline sync: {done.sent} sent, settled through {done.settled_through} "
        f"({done.accepted} accepted, {done.flagged} flagged, {done.repeated} repeated); "
        f"trust version {version}"
    )


async def _execute(
    args: argparse.Namespace,
    terminal: Terminal,
    out: TextIO,
    stdin: TextIO,
    chips: CardChips | None,
    link: str,
    kept: KeptRequests,
) -> None:
    c = args.command
    await terminal.connect()  # before key injection: a connection that cannot work costs nothing
    if c == "echo":
        print(receipt.format_echo(await terminal.echo(args.message)), file=out)
        print(f"connection: {link}", file=out)
        return
    if c == "sync":
        print(await _sync(args, terminal), file=out)
        return
    if c == "wallet-grant":
        from terminals.offline_cli import wallet_grant

        cap = parse_amount(args.amount, args.currency)
        per_tx = parse_amount(args.per_tx, args.currency) if args.per_tx else cap
        state_dir = args.state_dir or default_state_dir()
        try:
            line = await wallet_grant(
                terminal.offline_stub(), state_dir, args.wallet, cap, per_tx,
                issuer=args.issuer, account=args.account,
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            raise UsageError(f"grant refused: {exc.code().name}: {exc.details()}") from None
        print(line, file=out)
        return
    if c == "batch":
        try:
            lines = [parse_line(text) for text in args.line]
        except (ValueError, money.MoneyError) as exc:
            raise UsageError(f"--line: {exc}") from None
        print(format_close(await terminal.close_batch(lines, args.key)), file=out)
        return
    if c == "status":
        if (args.transaction_id is None) == (args.key is None):
            raise UsageError("status takes a transaction id or --key, not both")
        tx = await terminal.status(transaction_id=args.transaction_id, idempotency_key=args.key)
        print(receipt.format_transaction(tx), file=out)
        return
    if c != "pay":
        await terminal.start()  # key injection: follow-ups are MAC'd under DUKPT keys too
    if c == "pay":
        sale = await _pay(args, terminal, stdin, chips, kept, out)
        if isinstance(sale, KeptSale):
            result = await terminal.resend(sale.request, sale.masked_pan)
            print(receipt.format_result(result, args.merchant, args.terminal), file=out)
            print(
                "REPLAYED: the request kept for this key, sent again byte for byte; the "
                "switch's answer to it, confirmed by a MAC'd lookup",
                file=out,
            )
            return
        prepared = sale
    elif c == "capture":
        if (args.amount is None) != (args.currency is None):
            raise UsageError("capture takes both AMOUNT and CUR, or neither")
        amount = parse_amount(args.amount, args.currency) if args.amount else None
        prepared = terminal.prepare_capture(args.transaction_id, amount, args.key)
    elif c == "void":
        prepared = terminal.prepare_void(args.transaction_id, args.key)
    elif c == "refund":
        amount = parse_amount(args.amount, args.currency)
        prepared = terminal.prepare_refund(
            args.transaction_id, amount.minor_units, amount.currency, args.key
        )
    else:  # pragma: no cover - argparse only allows the commands above
        raise UsageError(f"unknown command {c!r}")
    result = await terminal.send(prepared)
    print(receipt.format_result(result, args.merchant, args.terminal), file=out)
    if result.rekey_required:
        print("RE-KEY REQUIRED: this terminal's DUKPT counter is nearly used up", file=out)


def _exit_code(exc: TerminalError) -> int:
    if isinstance(exc, InvalidRequest):
        return EXIT_USAGE if exc.code is None else EXIT_REFUSED
    if isinstance(exc, Refused | NotFound | AccessDenied):
        return EXIT_REFUSED
    if isinstance(exc, SwitchUnavailable | Overloaded | ResponseUntrusted | NotConnected):
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


def _error_line(exc: TerminalError) -> str:
    if exc.code is None:  # refused locally, before anything was sent
        return f"pos: error: {exc.message}"
    line = f"pos: {exc.code_name}: {exc.message}"
    if isinstance(exc, SwitchUnavailable) and exc.idempotency_key:
        line += f" (outcome unknown; check with: pos status --key {exc.idempotency_key})"
    return line


async def run(
    argv: list[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
    chips: CardChips | None = None,
) -> int:
    """The whole command, as a coroutine (what tests call); returns the exit status.

    ``chips``: the chip simulator for ``--chip`` (default: ``terminals.card_sim``)."""
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    if args.deadline <= 0 or args.attempts < 1:
        print("pos: error: --deadline must be positive and --attempts at least 1", file=err)
        return EXIT_USAGE
    state_dir = args.state_dir or default_state_dir()
    if args.command == "offline-pay":  # the offline sale needs no switch at all
        return await _offline_pay(args, state_dir, out, err)
    certs, source = choose_certs(args.certs_dir, args.plaintext, args.terminal)
    try:
        creds = terminal_credentials(certs, args.terminal) if certs else None
    except OSError as exc:
        print(
            f"pos: error: no certificate for {args.terminal} in {certs} (from {source}): "
            f"{exc.strerror}: {exc.filename}",
            file=err,
        )
        return EXIT_USAGE
    link = (
        f"mTLS as {args.terminal}, certificates in {certs} ({source})"
        if certs
        else (f"plaintext ({source})")
    )
    terminal = Terminal(
        args.switch,
        args.terminal,
        args.merchant,
        deadline_s=args.deadline,
        retry=RetryPolicy(max_attempts=args.attempts),
        # One process, one request: reserve a single STAN at a time.
        stans=StanCounter(stan_state_path(state_dir, args.terminal), block=1),
        credentials=creds,
    )
    try:
        await _execute(args, terminal, out, stdin, chips, link, KeptRequests(state_dir))
    except NotConnected as exc:
        why = await diagnose(args.switch, certs)
        print(f"pos: error: {exc.message} ({why})", file=err)
        return EXIT_UNAVAILABLE
    except KeptError as exc:
        print(f"pos: error: kept request: {exc}", file=err)
        return EXIT_ERROR
    except UsageError as exc:
        print(f"pos: error: {exc}", file=err)
        return EXIT_USAGE
    except TerminalError as exc:
        print(_error_line(exc), file=err)
        return _exit_code(exc)
    except (StanStateError, OSError) as exc:
        print(f"pos: error: STAN state: {exc}", file=err)
        return EXIT_ERROR
    except HsmError as exc:  # key injection or the chip simulator: the token is not there
        print(f"pos: error: HSM: {exc}", file=err)
        return EXIT_ERROR
    finally:
        await terminal.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point (``pos``)."""
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
