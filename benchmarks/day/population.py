"""A settled day's population, seeded, page by page: what the store and the issuers' books hold
at the cut-off after a live day, without running the day.

Each sale is drawn from the topology (a terminal, its merchant, a card the merchant's acquirers
take, an amount in the card's currency) and given an outcome with the mix below; the switch's
transaction ends in the state the live system leaves it in before the cut-off (``switch.operations``
and ``switch.backoffice.batches.join``: captured sales, approved refunds and voids joined to
their terminal's open batch), and the issuer's rows are what ``issuer.books`` would hold
(holds, online captures posted, refunds credited, reversals, stand-in advices, captures above
the hold deferred to clearing, chargebacks). One capture in 500 is left out of its batch and
marked unbatched, as one whose batch join failed (the cut-off's sweep joins it). Refunds and
chargebacks follow sales of the same page, so a page is self-contained and memory stays
bounded by the page.

No PAN anywhere: a card is its token (seeded random), masked PAN and BIN, as the switch stores it.
Cross-border sales (a twentieth of the captures) are sold in another currency of the card
scheme's rate table in force and converted as the scheme and the issuer do (``payswitch.fx``,
``issuer.books_fx``: the hold and posting in the billing currency, the sale's amount and rate
beside them). Known simplifications (README "The back office at volume"): a converted sale is
never refunded, tipped or charged back; the issuers' funds and limits are not checked (the books
take every sale); declines are 51s.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from issuer.books import APPROVED, INSUFFICIENT_FUNDS
from issuer.books_import import BooksPage
from payswitch import fx
from payswitch.cards import Scheme, bin_of, mask_pan, scheme_of
from payswitch.world.topology import CardConfig, Topology
from switch.domain.batches import BatchItem, ItemKind
from switch.domain.ledger import Dispute, DisputeState
from switch.domain.transactions import Transaction, TxState, TxType

DAY_S = 86_400
# outcome -> weight (per 10,000 authorizations); tips only at merchants whose MCC allows them.
MIX = {
    "full": 6_550,
    "partial": 1_000,
    "tip": 300,
    "void": 500,
    "auth_only": 300,
    "reversed": 200,
    "declined": 800,
    "standin": 300,
    "standin_open": 50,
}
REFUND_PER_10K = 600  # of full/partial captures
UNBATCHED_EVERY = 500  # sale 7, 507, ...: a capture whose batch join failed (marked unbatched)
CROSS_BORDER_PER_10K = 500  # of full/partial captures: sold in another currency than the card's
CHARGEBACK_PER_10K = 10  # of full/partial captures
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_RANGES = {"JPY": (300, 9_000), "KWD": (1_000, 40_000)}


@dataclass(frozen=True, slots=True)
class CardUse:
    """A card as the switch knows it (no PAN) and where it lives."""

    token: str
    masked_pan: str
    bin: str
    scheme: str
    issuer_id: str
    account: str
    currency: str


@dataclass(frozen=True, slots=True)
class Shop:
    terminal_id: str
    merchant_id: str
    mcc: str
    cards: tuple[tuple[CardUse, str], ...]  # (card, acquirer that takes its scheme)
    tips: bool


@dataclass
class Page:
    """What one page writes: the switch's rows, batch items, disputes, and each issuer's rows."""

    no: int
    txs: list[Transaction] = field(default_factory=list)
    items: list[tuple[str, BatchItem]] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)
    # captures whose batch join failed (``BatchStore.mark_unbatched``): the cut-off's sweep
    unbatched: list[tuple[str, str, ItemKind]] = field(default_factory=list)
    books: dict[str, BooksPage] = field(default_factory=dict)

    def issuer(self, issuer_id: str) -> BooksPage:
        if issuer_id not in self.books:
            self.books[issuer_id] = BooksPage(self.no)
        return self.books[issuer_id]


def cards_of(topology: Topology, rng: random.Random, today: str) -> list[CardUse]:
    """Every active, unexpired card whose account exists, tokenized with seeded tokens."""
    yymm = today[2:4] + today[5:7]
    out = []
    for issuer in topology.issuers:
        currency = {a.id: a.currency for a in issuer.accounts}
        for card in issuer.cards:
            if not _usable(card, currency, yymm):
                continue
            scheme = scheme_of(card.pan)
            assert scheme is not None
            out.append(
                CardUse(
                    token=f"tok_{rng.getrandbits(96):024x}",
                    masked_pan=mask_pan(card.pan),
                    bin=bin_of(card.pan),
                    scheme=scheme.value,
                    issuer_id=issuer.id,
                    account=card.account,
                    currency=currency[card.account],
                )
            )
    return out


def _usable(card: CardConfig, currency: dict[str, str], yymm: str) -> bool:
    return (
        card.status == "active"
        and card.account in currency
        and card.expiry > yymm
        and scheme_of(card.pan) is not None
        and card.per_txn_limit is None
    )


def shops_of(topology: Topology, cards: list[CardUse]) -> list[Shop]:
    """Each terminal with the cards its merchant's acquirers take (and which acquirer)."""
    merchants = {m.id: m for m in topology.merchants}
    acquirers = {a.id: a for a in topology.acquirers}
    tolerance = topology.settlement.tolerance_mccs
    shops = []
    for t in topology.terminals:
        m = merchants[t.merchant]
        takes = []
        for card in cards:
            acq = next(
                (a for a in m.acquirers if card.scheme in {s.value for s in acquirers[a].schemes}),
                None,
            )
            if acq is not None:
                takes.append((card, acq))
        if takes:
            shops.append(Shop(t.id, m.id, m.mcc, tuple(takes), m.mcc in tolerance))
    if not shops:
        raise ValueError("topology: no terminal takes any usable card")
    return shops


@dataclass(frozen=True, slots=True)
class Injector:
    """How a discrepancy alters a sale (``benchmarks.day.inject``): its base outcome by name,
    and ``apply(day, page, books, name, sale, card)`` -> (the sale now, transactions added)."""

    base: Mapping[str, str]
    apply: Callable[
        [Day, Page, BooksPage, str, Transaction, CardUse], tuple[Transaction, list[Transaction]]
    ]


class Day:
    """The seeded day: ``pages(count)`` yields pages of about ``page_size`` transactions."""

    def __init__(
        self,
        topology: Topology,
        *,
        seed: int,
        cutoff: float,
        today: str,
        injections: dict[int, str] | None = None,
        injector: Injector | None = None,
    ) -> None:
        self.topology = topology
        self.rng = random.Random(seed)
        self.cutoff = cutoff
        self.today = today
        self.cards = cards_of(topology, self.rng, today)
        self.shops = shops_of(topology, self.cards)
        # sale number -> discrepancy name (benchmarks.day.inject); what recon must find
        self.injections = injections or {}
        self.injector = injector
        self.expected: list[Any] = []  # what the injector says recon must find
        self.prior: list[tuple[str, dict[str, object]]] = []  # (acquirer, earlier report entry)
        self.stans: dict[str, int] = {}
        self.sales = 0
        self.rrn = 0
        self.outcomes = list(MIX)
        self.weights = list(MIX.values())
        day = dt.date.fromisoformat(today)
        self.tables: dict[str, fx.RateTable] = {}  # card scheme -> its rate table of the day
        for scheme in {c.scheme for c in self.cards}:
            config = topology.scheme_for_brand(Scheme(scheme))
            table = fx.table_for(config.rates, day) if config is not None else None
            if table is not None:
                self.tables[scheme] = table

    # --- numbering ------------------------------------------------------------------------
    def next_rrn(self) -> str:
        self.rrn += 1
        return f"9{self.rrn:011d}"  # the 9 keeps clear of the live switch's sequence

    def next_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def next_stan(self, terminal_id: str) -> int:
        n = self.stans.get(terminal_id, 0) + 1
        if n > 999_999:
            raise ValueError(f"terminal {terminal_id}: more than 999,999 STANs in a day")
        self.stans[terminal_id] = n
        return n

    def auth_code(self) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(6))

    def amount(self, currency: str) -> int:
        low, high = _RANGES.get(currency, (500, 9_000))
        return self.rng.randrange(low, high)

    # --- pages ----------------------------------------------------------------------------
    def pages(self, count: int, page_size: int) -> Iterator[Page]:
        """Pages until ``count`` switch transactions (sales and refunds) were written."""
        written, no = 0, 0
        while written < count:
            page = Page(no)
            room = min(page_size, count - written)
            while len(page.txs) < room:
                self.sale(page, room - len(page.txs))
            written += len(page.txs)
            no += 1
            yield page

    def sale(self, page: Page, room: int) -> None:
        """One authorization and what followed it (a capture, a void, a refund...)."""
        n = self.sales
        self.sales += 1
        shop = self.rng.choice(self.shops)
        card, acquirer = self.rng.choice(shop.cards)
        outcome = self.rng.choices(self.outcomes, self.weights)[0]
        if outcome == "tip" and not shop.tips:
            outcome = "full"
        injected = self.injections.get(n)
        if injected is not None:
            assert self.injector is not None, "injections need an injector"
            outcome = self.injector.base[injected]
        created = self.cutoff - DAY_S + self.rng.uniform(60.0, DAY_S - 600.0)
        if injected == "late_presentment":
            created -= 8 * DAY_S
        currency = card.currency
        converted = (
            outcome in ("full", "partial")
            and injected is None
            and self.rng.randrange(10_000) < CROSS_BORDER_PER_10K
        )
        if converted:
            currency = self.foreign(card) or currency
            converted = currency != card.currency
        amount = self.amount(currency)
        tx = Transaction(
            id=self.next_id(),
            type=TxType.AUTHORIZATION,
            state=TxState.APPROVED,
            terminal_id=shop.terminal_id,
            merchant_id=shop.merchant_id,
            stan=self.next_stan(shop.terminal_id),
            local_date=_date(created),
            local_time=_local(created),
            amount_minor=amount,
            currency=currency,
            card_token=card.token,
            masked_pan=card.masked_pan,
            bin=card.bin,
            scheme=card.scheme,
            rrn=self.next_rrn(),
            created_at=created,
            updated_at=created + 0.4,
            deadline_at=created + 2.0,
            acquirer_id=acquirer,
            response_code="00",
            auth_code=self.auth_code(),
            idempotency_key=f"gen-{n}",
            entry_mode="CHIP",
            mcc=shop.mcc,
            version=3,  # RECEIVED -> PENDING -> APPROVED
        )
        books = page.issuer(card.issuer_id)
        if converted:
            tx = self.convert(tx, card)
        tx = _OUTCOMES[outcome](self, page, books, tx, card)
        extra: list[Transaction] = []
        if converted:
            _converted_books(books, tx)
        elif outcome == "full" and injected is None and n % UNBATCHED_EVERY == 7:
            terminal_id, item = page.items.pop()  # its join failed: marked for the sweep
            page.unbatched.append((terminal_id, item.transaction_id, item.kind))
        elif outcome in ("full", "partial") and room > 1 and injected is None:
            if self.rng.randrange(10_000) < REFUND_PER_10K:
                tx, refund = self.refund(page, books, tx, card)
                extra.append(refund)
            elif self.rng.randrange(10_000) < CHARGEBACK_PER_10K:
                self.chargeback(page, books, tx, card)
        if injected is not None:
            assert self.injector is not None
            tx, more = self.injector.apply(self, page, books, injected, tx, card)
            extra += more
        page.txs.append(tx)
        page.txs.extend(extra)

    def foreign(self, card: CardUse) -> str | None:
        """Another currency the card scheme's table of the day quotes, or None."""
        table = self.tables.get(card.scheme)
        if table is None:
            return None
        choices = sorted({table.base, *(c for c, _ in table.quotes)} - {card.currency})
        return self.rng.choice(choices) if choices else None

    def convert(self, tx: Transaction, card: CardUse) -> Transaction:
        """The scheme's conversion of the authorization into the card's billing currency."""
        c = self.tables[card.scheme].convert(tx.amount_minor, tx.currency, card.currency)
        return tx.copy(
            billing_minor=c.billing_minor,
            billing_currency=c.billing_currency,
            fx_rate=fx.format_rate(c.rate),
            rate_table=c.table_version,
        )

    def refund(
        self, page: Page, books: BooksPage, sale: Transaction, card: CardUse
    ) -> tuple[Transaction, Transaction]:
        """A full or partial refund of ``sale`` later in the day: (the sale as it is now, the
        refund). ``sale``'s issuer row must be the last of ``books``."""
        amount = (
            sale.captured_minor if self.rng.random() < 0.4 else max(1, sale.captured_minor // 3)
        )
        at = min(sale.updated_at + self.rng.uniform(60.0, 3_600.0), self.cutoff - 1.0)
        refund = Transaction(
            id=self.next_id(),
            type=TxType.REFUND,
            state=TxState.APPROVED,
            terminal_id=sale.terminal_id,
            merchant_id=sale.merchant_id,
            stan=self.next_stan(sale.terminal_id),
            local_date=_date(at),
            local_time=_local(at),
            amount_minor=amount,
            currency=sale.currency,
            card_token=sale.card_token,
            masked_pan=sale.masked_pan,
            bin=sale.bin,
            scheme=sale.scheme,
            rrn=self.next_rrn(),
            created_at=at,
            updated_at=at + 0.3,
            deadline_at=at + 2.0,
            acquirer_id=sale.acquirer_id,
            response_code="00",
            original_id=sale.id,
            idempotency_key=f"gen-refund-{sale.id}",
            mcc=sale.mcc,
            version=3,
        )
        page.items.append((sale.terminal_id, _item(refund, ItemKind.REFUND, amount)))
        books.advices.append(("refund", refund.rrn, sale.rrn, amount, APPROVED))
        books.move(card.account, balance=amount)
        # the sale's own row carries what was refunded of it (issuer: authorizations.refunded)
        rrn, acct, cur, held, code, auth_code, state, posted, _ = books.auths[-1]
        books.auths[-1] = (rrn, acct, cur, held, code, auth_code, state, posted, amount)
        return sale.copy(refunded_minor=amount, version=sale.version + 1), refund

    def chargeback(self, page: Page, books: BooksPage, sale: Transaction, card: CardUse) -> None:
        """The issuer charged the sale back and the switch took the dispute in."""
        cb_id = f"CB-{sale.rrn}"
        raised = min(sale.updated_at + 3_600.0, self.cutoff - 1.0)
        amount = sale.captured_minor
        books.chargebacks.append(
            (cb_id, sale.rrn, card.account, amount, sale.currency, "4837", raised, "RAISED")
        )
        books.move(card.account, balance=amount)
        page.disputes.append(
            Dispute(
                dispute_id=cb_id,
                transaction_id=sale.id,
                rrn=sale.rrn,
                merchant_id=sale.merchant_id,
                acquirer_id=sale.acquirer_id,
                issuer_id=card.issuer_id,
                amount_minor=amount,
                currency=sale.currency,
                reason_code="4837",
                state=DisputeState.CHARGEBACK,
                raised_at=raised,
                representment_due=raised + 30 * DAY_S,
                updated_at=raised,
            )
        )


def _date(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def _local(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _item(tx: Transaction, kind: ItemKind, amount: int) -> BatchItem:
    return BatchItem(tx.id, kind, amount, tx.currency, tx.scheme, tx.updated_at)


def _hold(books: BooksPage, tx: Transaction, card: CardUse, state: str, posted: int = 0) -> None:
    """The issuer's authorization row: a converted sale's in its billing amount."""
    held = tx.billing_minor if tx.billing_currency else tx.amount_minor
    books.auths.append(
        (tx.rrn, card.account, card.currency, held, APPROVED, tx.auth_code, state, posted, 0)
    )


def _converted_books(books: BooksPage, tx: Transaction) -> None:
    """A converted sale's ``auth_fx`` row: its transaction amount and rate, what was posted."""
    books.fx.append(
        (tx.rrn, tx.currency, tx.amount_minor, tx.fx_rate, tx.rate_table, tx.captured_minor, 0)
    )


def _captured(day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse,
              amount: int) -> Transaction:  # fmt: skip
    """Captured online: the issuer posted it (a converted sale: at the sale's rate, in the
    billing currency) and released the rest of the hold."""
    billed = 0
    if tx.billing_currency:
        billed = fx.convert(amount, tx.currency, tx.billing_currency, fx.parse_rate(tx.fx_rate))
    tx = tx.copy(
        state=TxState.CAPTURED,
        captured_minor=amount,
        billing_captured_minor=billed,
        updated_at=tx.updated_at + day.rng.uniform(1.0, 600.0),
        version=tx.version + 1,
    )
    posted = billed if tx.billing_currency else amount
    _hold(books, tx, card, "POSTED", posted)
    books.advices.append(("capture", tx.rrn, tx.rrn, posted, APPROVED))
    books.move(card.account, balance=-posted)
    page.items.append((tx.terminal_id, _item(tx, ItemKind.SALE, amount)))
    return tx


def _full(day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse) -> Transaction:
    return _captured(day, page, books, tx, card, tx.amount_minor)


def _partial(day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse) -> Transaction:
    amount = day.rng.randrange(max(1, tx.amount_minor // 3), tx.amount_minor)
    return _captured(day, page, books, tx, card, amount)


def _tip(day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse) -> Transaction:
    """Captured above the hold within the MCC's tolerance: the issuer acknowledged it and
    defers the posting to clearing (``issuer.books_settlement``); the hold stays."""
    ceiling = day.topology.settlement.capture_ceiling(tx.amount_minor, tx.mcc)
    amount = day.rng.randrange(tx.amount_minor + 1, ceiling + 1)
    tx = tx.copy(state=TxState.CAPTURED, captured_minor=amount, version=tx.version + 1)
    _hold(books, tx, card, "HELD")
    books.deferred.append((tx.rrn, amount, tx.mcc, "ABOVE_HOLD_WITHIN_TOLERANCE"))
    books.advices.append(("capture", tx.rrn, tx.rrn, amount, APPROVED))
    books.move(card.account, held=tx.amount_minor, holds=1)
    page.items.append((tx.terminal_id, _item(tx, ItemKind.SALE, amount)))
    return tx


def _void(day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse) -> Transaction:
    tx = tx.copy(state=TxState.VOIDED, version=tx.version + 1)
    _hold(books, tx, card, "RELEASED")
    books.advices.append(("reversal", tx.rrn, tx.rrn, 0, APPROVED))
    page.items.append((tx.terminal_id, _item(tx, ItemKind.VOID, tx.amount_minor)))
    return tx


def _auth_only(
    day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse
) -> Transaction:
    _hold(books, tx, card, "HELD")
    books.move(card.account, held=tx.amount_minor, holds=1)
    return tx


def _reversed(
    day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse
) -> Transaction:
    """The issuer's answer was lost (91): the switch reversed it, the issuer released it."""
    tx = tx.copy(state=TxState.REVERSED, response_code="91", auth_code="", version=tx.version + 2)
    _hold(books, tx, card, "RELEASED")
    books.advices.append(("reversal", tx.rrn, tx.rrn, 0, APPROVED))
    return tx


def _declined(
    day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse
) -> Transaction:
    tx = tx.copy(state=TxState.DECLINED, response_code="51", auth_code="")
    books.auths.append(
        (tx.rrn, card.account, card.currency, tx.amount_minor, INSUFFICIENT_FUNDS, "", "DECLINED",
         0, 0)
    )  # fmt: skip
    return tx


def _standin(day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse) -> Transaction:
    """Approved in stand-in, captured at once, advised later: the issuer holds the advice."""
    tx = tx.copy(state=TxState.CAPTURED, captured_minor=tx.amount_minor, version=tx.version + 2)
    _standin_hold(books, tx, card)
    page.items.append((tx.terminal_id, _item(tx, ItemKind.SALE, tx.amount_minor)))
    return tx


def _standin_open(
    day: Day, page: Page, books: BooksPage, tx: Transaction, card: CardUse
) -> Transaction:
    """Approved in stand-in and advised; not captured yet (its hold stays)."""
    tx = tx.copy(state=TxState.ADVISED, version=tx.version + 1)
    _standin_hold(books, tx, card)
    return tx


def _standin_hold(books: BooksPage, tx: Transaction, card: CardUse) -> None:
    _hold(books, tx, card, "HELD")
    books.advices.append(("standin", tx.rrn, tx.rrn, tx.amount_minor, APPROVED))
    books.move(card.account, held=tx.amount_minor, holds=1)


_OUTCOMES = {
    "full": _full,
    "partial": _partial,
    "tip": _tip,
    "void": _void,
    "auth_only": _auth_only,
    "reversed": _reversed,
    "declined": _declined,
    "standin": _standin,
    "standin_open": _standin_open,
}
assert set(_OUTCOMES) == set(MIX)
