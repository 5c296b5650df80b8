"""``python -m terminals.demo --topology FILE [--switch ADDR]`` (``make demo``): one terminal's
scripted shift against a running stack, printed as a table; exit status 1 if any step's answer
deviates from what the topology says it must be, 2 if the switch cannot be reached at all.

The shift: sign-on (echo) and key injection; one approval per scheme the merchant accepts;
every decline the topology can produce (51, 54, 05 blocked, 05 lost, 61, 14); card security: a
PIN approval and a wrong PIN (55), a keyed sale with the card's CVV2 and one with a wrong CVV2
(05), a chip sale whose ARPC the card checks, a request altered after its MAC (refused,
UNAUTHENTICATED); a sale captured in part and then partly refunded; a sale voided; one prepared
sale sent twice (same key, same STAN: the same answer, no second charge); the same key with
other content (refused, FAILED_PRECONDITION); lookups by transaction id and by key; then the
batch: a close that takes in everything before, one sale per currency the merchant can take
(EUR, JPY, KWD, USD: three minor-unit exponents) captured (the home one partly, refunded in
part, plus a voided sale), and a close with the terminal's own totals, which must come back IN
BALANCE. The shift ends with the settlement summary of that batch per currency: gross, fees
(the topology's fee table, per presentment, as the acquirer computes them at cut-off) and net
to the merchant. Cards are printed masked only; PINs and CVV2s never.

CVV2s and chip cryptograms come from the card simulator (``terminals.card_sim``, the issuers'
keys in the shared SoftHSM token), as they would come from the plastic and the chip.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TextIO, TypeVar

from hsm.errors import HsmError
from payswitch import cards, money
from payswitch.settlement.fees import fee_for
from payswitch.v1 import terminal_pb2
from payswitch.world.settlement import FeeConfig
from payswitch.world.topology import Topology, TopologyError, load
from terminals.batch import BatchTotals, format_close
from terminals.chip import CardChips, simulated_reader
from terminals.demo_plan import CardCase, Plan, PlanError, build_plan
from terminals.errors import TerminalError
from terminals.pos import chips_state_path, default_state_dir, stan_state_path
from terminals.results import Result, TransactionView
from terminals.sdk import EntryMode, Terminal, terminal_credentials
from terminals.stan import StanCounter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    step: str
    card: str
    amount: str
    expect: str
    got: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expect == self.got


class CardSource(CardChips, Protocol):
    """CVV2s and chips of the topology's cards (``terminals.card_sim.CardSimulator``)."""

    async def cvv2(self, pan: str) -> str: ...


def wrong_pin(pin: str) -> str:
    """Another PIN of the same length (the last digit moved on by one)."""
    return pin[:-1] + str((int(pin[-1]) + 1) % 10)


def wrong_cvv2(cvv2: str) -> str:
    """Another CVV2 of the same length."""
    return str((int(cvv2) + 1) % 10 ** len(cvv2)).rjust(len(cvv2), "0")


class Shift:
    """Runs the steps in order and keeps one table row per step."""

    def __init__(
        self,
        terminal: Terminal,
        plan: Plan,
        cards: CardSource,
        fees: tuple[FeeConfig, ...] = (),
    ) -> None:
        self.t = terminal
        self.plan = plan
        self.cards = cards
        self.rows: list[Row] = []
        self.fees = fees
        self.settlement: dict[str, dict[str, int]] = {}  # currency -> gross, fees, net
        self.close_text = ""
        # The offline step: (issuer, account, currency) of the home card, where state lives.
        self.offline_account: tuple[str, str, str] | None = None
        self.state_dir = default_state_dir()

    def _add(
        self,
        step: str,
        card: str,
        amount: money.Amount | None,
        expect: str,
        got: str,
        detail: str = "",
    ) -> None:
        self.rows.append(Row(step, card, amount.format() if amount else "", expect, got, detail))

    async def _try(self, aw: Awaitable[T]) -> T | TerminalError:
        try:
            return await aw
        except TerminalError as exc:
            return exc

    def _result_row(
        self, step: str, r: Result | TerminalError, expect: str, amount: money.Amount | None
    ) -> Result | None:
        if isinstance(r, TerminalError):
            self._add(step, "", amount, expect, r.code_name, r.message)
            return None
        detail = f"txn {r.transaction_id[:12]} auth {r.auth_code or '-'} {r.state}".rstrip()
        if r.billing is not None:  # a foreign card: what the cardholder is billed, and the rate
            detail += f" billed {r.billing.format()} at {r.conversion_rate}"
        self._add(step, r.masked_pan, r.amount or amount, expect, r.iso_code, detail)
        return r

    async def pay(
        self,
        case: CardCase,
        step: str | None = None,
        *,
        entry: EntryMode = EntryMode.CHIP,
        pin: str | None = None,
        cvv2: str | None = None,
        chip: bool = False,
    ) -> Result | None:
        r = await self._try(
            self.t.pay(
                case.amount.minor_units,
                case.amount.currency,
                case.pan,
                case.expiry,
                entry,
                pin=pin,
                cvv2=cvv2,
                chip=chip,
            )
        )
        if isinstance(r, TerminalError):
            self._add(
                step or case.label,
                cards.mask_pan(case.pan),
                case.amount,
                case.expect,
                r.code_name,
                r.message,
            )
            return None
        return self._result_row(step or case.label, r, case.expect, case.amount)

    async def lookup(self, step: str, expect_state: str, **by: str) -> TransactionView | None:
        v = await self._try(self.t.status(**by))
        if isinstance(v, TerminalError):
            self._add(step, "", None, expect_state, v.code_name, v.message)
            return None
        self._add(
            step, v.masked_pan, v.amount, expect_state, v.state, f"txn {v.transaction_id[:12]}"
        )
        return v

    async def run(self) -> None:
        echo = await self._try(self.t.echo("demo sign-on"))
        if isinstance(echo, TerminalError):
            self._add("echo (sign-on)", "", None, "OK", echo.code_name, echo.message)
            return
        self._add(
            "echo (sign-on)", "", None, "OK", "OK", f"{echo.switch_id} {echo.round_trip_ms:.1f} ms"
        )
        for case in (*self.plan.approvals, *self.plan.declines):
            await self.pay(case)
        if self.plan.foreign is not None:  # converted by the scheme (issue 16)
            await self.pay(self.plan.foreign)
        await self.card_security()
        await self.lifecycle()
        await self.idempotency()
        await self.batch()
        await self.offline()

    async def offline(self) -> None:
        """An offline sale and its settlement (README "Offline payments"): a wallet granted an
        allowance by the home card's issuer through the switch, a sale taken with no switch,
        then pos sync. Skipped (one row saying why) when the switch has no offline trust."""
        import grpc

        from terminals import offline_cli
        from terminals.offline import OfflineTerminal
        from terminals.offline_sync import sync

        steps = ("offline: wallet allowance", "offline sale (no switch)", "offline sync")
        where = self.offline_account
        stub = self.t.offline_stub()
        journal_path = offline_cli.journal_path(self.state_dir, self.t.terminal_id)
        try:
            await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True)
            journal = await asyncio.to_thread(
                OfflineTerminal, journal_path, self.t.terminal_id, self.t.merchant_id
            )
            try:
                await sync(stub, journal)
                has_keys = bool((await asyncio.to_thread(journal.trust)).keys)
            finally:
                await asyncio.to_thread(journal.close)
        except grpc.aio.AioRpcError as exc:
            has_keys, where = False, None
            why = exc.code().name
        else:
            why = "no offline keys: run payswitch-offline keys (make hsm does)"
        if not has_keys or where is None:
            for step in steps:
                self._add(step, "", None, "skipped", "skipped", why)
            return
        issuer, account, currency = where
        cap = money.Amount(money.parse_major("60", currency), currency)
        sale = money.Amount(cap.minor_units * 5 // 24, currency)  # 12.50 of 60.00
        try:
            line = await offline_cli.wallet_grant(
                stub, self.state_dir, "demo", cap, money.Amount(cap.minor_units // 2, currency),
                issuer=issuer, account=account,
            )  # fmt: skip
        except grpc.aio.AioRpcError as exc:
            self._add(steps[0], "", cap, "OK", exc.code().name, exc.details() or "")
            return
        self._add(steps[0], "wallet demo", cap, "OK", "OK", line.split(": ", 1)[1][:60])
        said = await asyncio.to_thread(
            offline_cli.offline_pay,
            self.state_dir, self.t.terminal_id, self.t.merchant_id, "demo", sale,
        )  # fmt: skip
        got = "APPROVED" if said.startswith("APPROVED OFFLINE") else "DECLINED"
        self._add(steps[1], "wallet demo", sale, "APPROVED", got, said[:60])
        journal = await asyncio.to_thread(
            OfflineTerminal, journal_path, self.t.terminal_id, self.t.merchant_id
        )
        try:
            done = await sync(stub, journal)
        except grpc.aio.AioRpcError as exc:
            self._add(steps[2], "", None, "settled", exc.code().name, exc.details() or "")
            return
        finally:
            await asyncio.to_thread(journal.close)
        ok = "settled" if done.flagged == 0 and done.accepted >= 1 else "flagged"
        self._add(
            steps[2], "", None, "settled", ok,
            f"{done.accepted} accepted, {done.flagged} flagged, through #{done.settled_through}",
        )  # fmt: skip

    async def batch(self) -> None:
        """Flush the open batch, sell in every currency, close in balance (0500/0510)."""
        flush = await self._try(self.t.close_batch(()))
        if isinstance(flush, TerminalError):
            self._add("batch close (earlier sales)", "", None, "closed", flush.code_name)
            return
        lines = ", ".join(t.currency for t in flush.switch_totals) or "empty"
        detail = f"batch {flush.batch_number}: {lines}"
        self._add("batch close (earlier sales)", "", None, "closed", "closed", detail)
        mine = BatchTotals()
        presented: list[tuple[str, money.Amount, bool]] = []  # scheme, amount, is a sale
        for n, case in enumerate(self.plan.batch_cases):
            sale = await self.pay(case)
            if sale is None or not sale.approved:
                continue
            card_scheme = cards.scheme_of(case.pan)
            assert card_scheme is not None  # the plan only holds cards of known schemes
            scheme = card_scheme.value
            amount = case.amount
            if n == 0:  # the home currency: partial capture and a partial refund
                amount = money.Amount(case.amount.minor_units * 3 // 4, case.amount.currency)
            captured = await self._try(self.t.capture(sale.transaction_id, amount))
            cap = self._result_row(f"capture {amount.currency}", captured, "00", amount)
            if cap is None or not cap.approved:
                continue
            mine.sale(amount, scheme)
            presented.append((scheme, amount, True))
            if n == 0:
                back = money.Amount(amount.minor_units // 3, amount.currency)
                ref = await self._try(
                    self.t.refund(sale.transaction_id, back.minor_units, back.currency)
                )
                refunded = self._result_row("refund in batch", ref, "00", back)
                if refunded is not None and refunded.approved:
                    mine.refund(back, scheme)
                    presented.append((scheme, back, False))
                voided = await self.pay(replace(case, label="sale to void in batch"))
                if voided is not None and voided.approved:
                    v = await self._try(self.t.void(voided.transaction_id))
                    void_row = self._result_row("void in batch", v, "00", case.amount)
                    if void_row is not None and void_row.approved:
                        mine.void(case.amount.currency, scheme)
        closed = await self._try(self.t.close_batch(mine))
        if isinstance(closed, TerminalError):
            self._add("batch close (0510)", "", None, "IN BALANCE", closed.code_name)
            return
        got = "IN BALANCE" if closed.in_balance else "OUT OF BALANCE"
        self._add("batch close (0510)", "", None, "IN BALANCE", got, f"batch {closed.batch_number}")
        self.close_text = format_close(closed)
        self.settlement = settlement_summary(presented, self.fees, self.plan.mcc)

    async def card_security(self) -> None:
        """PIN, CVV2, chip (ARPC) and a tampered request."""
        plan = self.plan
        c = plan.pin_card
        if c is not None and c.pin is not None:
            await self.pay(c, pin=c.pin)
            await self.pay(replace(c, label="wrong PIN", expect="55"), pin=wrong_pin(c.pin))
        home = plan.home
        cur = home.amount.currency
        small = money.Amount(home.amount.minor_units // 4, cur)  # 10.00
        keyed = replace(home, label="keyed, right CVV2", amount=small)
        cvv2 = await self.cards.cvv2(home.pan)
        await self.pay(keyed, entry=EntryMode.MANUAL, cvv2=cvv2)
        bad = replace(keyed, label="keyed, wrong CVV2", expect="05")
        await self.pay(bad, entry=EntryMode.MANUAL, cvv2=wrong_cvv2(cvv2))
        await self.chip_sale(replace(home, label="chip sale, ARPC", amount=small))
        await self.tampered(replace(home, label="altered after MAC", amount=small))

    async def chip_sale(self, case: CardCase) -> None:
        expect = "00 ARPC ok"
        r = await self._try(
            self.t.pay(
                case.amount.minor_units, case.amount.currency, case.pan, case.expiry, chip=True
            )
        )
        if isinstance(r, TerminalError):
            self._add(case.label, cards.mask_pan(case.pan), case.amount, expect, r.code_name)
            return
        got = f"{r.iso_code} ARPC {'ok' if r.arpc_verified else 'FAILED'}"
        self._add(
            case.label, r.masked_pan, case.amount, expect, got, f"txn {r.transaction_id[:12]}"
        )

    async def tampered(self, case: CardCase) -> None:
        """A sale whose amount changes after the terminal MAC'd it: the switch must refuse it
        before recording anything (a man in the middle, or a broken terminal)."""
        prepared = self.t.prepare_pay(
            case.amount.minor_units, case.amount.currency, case.pan, case.expiry
        )
        request = prepared.request
        assert isinstance(request, terminal_pb2.AuthorizeRequest)  # prepare_pay builds one
        request.amount.minor_units += 100
        r = await self._try(self.t.send(prepared))
        got = r.code_name if isinstance(r, TerminalError) else r.iso_code
        detail = r.message if isinstance(r, TerminalError) else "answered instead of refused"
        self._add(case.label, cards.mask_pan(case.pan), case.amount, "UNAUTHENTICATED", got, detail)

    async def lifecycle(self) -> None:
        home = self.plan.home
        cur = home.amount.currency
        sale = await self.pay(home, "sale to capture")
        if sale is not None and sale.approved:
            part = money.Amount(home.amount.minor_units * 5 // 8, cur)  # 25.00 of 40.00
            cap = await self._try(self.t.capture(sale.transaction_id, part))
            self._result_row("partial capture", cap, "00", part)
            back = money.Amount(home.amount.minor_units // 4, cur)  # 10.00
            ref = await self._try(self.t.refund(sale.transaction_id, back.minor_units, cur))
            self._result_row("refund of captured sale", ref, "00", back)
            await self.lookup("status by id", "CAPTURED", transaction_id=sale.transaction_id)
        else:
            self._skip("partial capture", "refund of captured sale", "status by id")
        small = CardCase(
            "sale to void",
            home.pan,
            home.expiry,
            money.Amount(home.amount.minor_units * 3 // 8, cur),
            "00",
        )
        sale = await self.pay(small)
        if sale is not None and sale.approved:
            void = await self._try(self.t.void(sale.transaction_id))
            self._result_row("void", void, "00", small.amount)
            await self.lookup("status after void", "VOIDED", transaction_id=sale.transaction_id)
        else:
            self._skip("void", "status after void")

    def _skip(self, *steps: str) -> None:
        """Steps that could not run because the sale they need was not approved."""
        for step in steps:
            self._add(step, "", None, "run", "skipped", "needs an approved sale")

    async def idempotency(self) -> None:
        home = self.plan.home
        amount = money.Amount(home.amount.minor_units // 8, home.amount.currency)  # 5.00
        prepared = self.t.prepare_pay(amount.minor_units, amount.currency, home.pan, home.expiry)
        first = await self._try(self.t.send(prepared))
        first_ok = self._result_row("sale (key K)", first, "00", amount)
        again = await self._try(self.t.send(prepared))
        if isinstance(again, TerminalError) or first_ok is None:
            self._result_row("same request resent", again, "00 same", amount)
        else:
            same = (again.iso_code, again.transaction_id, again.rrn, again.auth_code) == (
                first_ok.iso_code,
                first_ok.transaction_id,
                first_ok.rrn,
                first_ok.auth_code,
            )
            got = f"{again.iso_code} {'same' if same else 'DIFFERENT'}"
            self._add(
                "same request resent",
                again.masked_pan,
                amount,
                "00 same",
                got,
                f"txn {again.transaction_id[:12]}",
            )
        other = money.Amount(
            amount.minor_units + 10 ** money.exponent(amount.currency), amount.currency
        )
        conflict = await self._try(
            self.t.pay(
                other.minor_units,
                other.currency,
                home.pan,
                home.expiry,
                idempotency_key=prepared.idempotency_key,
            )
        )
        if isinstance(conflict, TerminalError):
            self._add(
                "key K, other amount",
                cards.mask_pan(home.pan),
                other,
                "FAILED_PRECONDITION",
                conflict.code_name,
                conflict.message,
            )
        else:
            self._add(
                "key K, other amount",
                conflict.masked_pan,
                other,
                "FAILED_PRECONDITION",
                conflict.iso_code,
                "answered instead of refused",
            )
        await self.lookup("status by key K", "APPROVED", idempotency_key=prepared.idempotency_key)


def settlement_summary(
    presented: list[tuple[str, money.Amount, bool]], fees: tuple[FeeConfig, ...], mcc: str
) -> dict[str, dict[str, int]]:
    """Per currency: gross (sales - refunds), fees (``fee_for`` per captured sale, as the
    acquirer computes them; refunds carry none) and net to the merchant. Never across
    currencies."""
    out: dict[str, dict[str, int]] = {}
    for scheme, amount, is_sale in presented:
        line = out.setdefault(amount.currency, {"gross_minor": 0, "fees_minor": 0, "net_minor": 0})
        if is_sale:
            fee = fee_for(fees, scheme, mcc, amount.currency, amount.minor_units).total_minor
            line["gross_minor"] += amount.minor_units
            line["fees_minor"] += fee
        else:
            line["gross_minor"] -= amount.minor_units
        line["net_minor"] = line["gross_minor"] - line["fees_minor"]
    return dict(sorted(out.items()))


def print_settlement(summary: dict[str, dict[str, int]], close_text: str, out: TextIO) -> None:
    """The batch close and the settlement summary, each amount with its currency's exponent."""
    if close_text:
        print(close_text, file=out)
    if not summary:
        return
    print("settlement at cut-off (per currency: gross, fees, net to the merchant):", file=out)
    for cur, t in summary.items():
        gross, fees, net = (
            money.format_major(t[k], cur) for k in ("gross_minor", "fees_minor", "net_minor")
        )
        print(f"  {cur}  gross {gross:>12}  fees {fees:>10}  net {net:>12} {cur}", file=out)
    # The cut-off (22:00 UTC, or `kill -USR1` the switch) clears and settles; reconciling the
    # three sources afterwards is the operator's step, not automatic (README, "Reconciliation").
    print(RECON_HINT, file=out)


RECON_HINT = (
    "after the cut-off, reconcile (operator): payswitch-recon --store URL run"
    " --dir .run/settlement --books .run/books/*.db --topology topology/default.toml"
)


def print_table(plan: Plan, rows: list[Row], out: TextIO) -> None:
    print(
        f"payswitch demo: terminal {plan.terminal_id} ({plan.merchant_id}) -> {plan.switch}",
        file=out,
    )
    header = ("#", "step", "card", "amount", "expect", "got", "", "detail")
    table = [header] + [
        (str(n), r.step, r.card, r.amount, r.expect, r.got, "ok" if r.ok else "FAIL", r.detail)
        for n, r in enumerate(rows, 1)
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)
    bad = sum(not r.ok for r in rows)
    print(
        f"{len(rows) - bad}/{len(rows)} steps as expected" + (f", {bad} FAILED" if bad else ""),
        file=out,
    )


async def run(
    argv: list[str] | None = None, out: TextIO | None = None, cards: CardSource | None = None
) -> int:
    """The demo as a coroutine; ``cards``: CVV2s and chips (default: the card simulator)."""
    out = out or sys.stdout
    p = argparse.ArgumentParser(prog="python -m terminals.demo", description=__doc__.split("\n")[0])
    p.add_argument("--topology", required=True, type=Path)
    p.add_argument(
        "--switch",
        default=os.environ.get("PAYSWITCH_ADDR"),
        help="switch host:port (default: $PAYSWITCH_ADDR or the topology's)",
    )
    p.add_argument("--terminal", help="terminal id (default: the topology's first)")
    p.add_argument("--deadline", type=float, default=2.0)
    p.add_argument("--state-dir", type=Path, help="STAN state directory (shared with pos)")
    p.add_argument(
        "--certs-dir",
        type=Path,
        default=os.environ.get("PAYSWITCH_CERTS_DIR") or None,
        help="mTLS: payswitch-certs directory (make demo: .run/certs); none: plaintext",
    )
    args = p.parse_args(argv)
    try:
        topology = load(args.topology)
        plan = build_plan(topology, terminal_id=args.terminal, switch=args.switch)
    except (TopologyError, PlanError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    if cards is None:
        from terminals.card_sim import CardSimulator

        cards = CardSimulator(
            topology, atc_path=chips_state_path(args.state_dir or default_state_dir())
        )
    stans = StanCounter(stan_state_path(args.state_dir or default_state_dir(), plan.terminal_id))
    try:
        creds = terminal_credentials(args.certs_dir, plan.terminal_id) if args.certs_dir else None
    except OSError as exc:
        print(f"demo: no certificate for {plan.terminal_id}: {exc}", file=sys.stderr)
        return 2
    async with Terminal(
        plan.switch,
        plan.terminal_id,
        plan.merchant_id,
        deadline_s=args.deadline,
        stans=stans,
        chip_reader=simulated_reader(cards),
        credentials=creds,
    ) as terminal:
        shift = Shift(terminal, plan, cards, topology.fees)
        shift.state_dir = args.state_dir or default_state_dir()
        shift.offline_account = _home_account(topology, plan.home.pan)
        try:
            await terminal.start()  # key injection before the first sale
            await shift.run()
        except HsmError as exc:
            print(f"demo: HSM: {exc} (run 'make hsm' first)", file=sys.stderr)
            return 2
    print_table(plan, shift.rows, out)
    print_settlement(shift.settlement, shift.close_text, out)
    if len(shift.rows) == 1 and not shift.rows[0].ok:
        return 2  # the switch never answered the sign-on
    return 0 if all(r.ok for r in shift.rows) else 1


def _home_account(topology: Topology, pan: str) -> tuple[str, str, str] | None:
    """(issuer, account, currency) of the home card, for the offline step."""
    for issuer in topology.issuers:
        for card in issuer.cards:
            if card.pan == pan:
                currency = {a.id: a.currency for a in issuer.accounts}.get(card.account)
                return (issuer.id, card.account, currency) if currency else None
    return None


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
