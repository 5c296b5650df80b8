"""What the SDK hands back: small frozen dataclasses built from the switch's responses.

They carry the masked PAN only (the switch never returns more), amounts as
``payswitch.money.Amount`` (integer minor units), and response codes three ways: ``approved``,
the ISO 8583 two-digit ``iso_code`` ("00", "51") and its ``code_name``.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from payswitch import codes, money
from payswitch.v1 import common_pb2, terminal_pb2
from terminals.errors import scrub


def amount_of(value: common_pb2.Money) -> money.Amount | None:
    """A proto Money to an Amount; None when absent or in a currency we do not know."""
    if not value.currency or not money.is_currency(value.currency):
        return None
    return money.Amount(int(value.minor_units), value.currency)


def code_name(value: int) -> str:
    try:
        return codes.name(value)
    except ValueError:  # a code newer than this SDK
        return f"CODE_{value}"


def scheme_name(value: int) -> str:
    if value == common_pb2.CARD_SCHEME_UNSPECIFIED:
        return ""
    try:
        return common_pb2.CardScheme.Name(value).removeprefix("CARD_SCHEME_").lower()
    except ValueError:
        return str(value)


def _enum_name(enum: EnumTypeWrapper, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix)
    except ValueError:
        return str(value)


@dataclass(frozen=True, slots=True)
class TransactionView:
    """A transaction as the switch records it (``status()``); no card data but the mask."""

    transaction_id: str
    type: str  # AUTHORIZATION | REFUND
    state: str  # APPROVED, CAPTURED, VOIDED, ...
    terminal_id: str
    merchant_id: str
    stan: int
    local_time: str
    amount: money.Amount | None
    captured: money.Amount | None
    refunded: money.Amount | None
    approved: bool
    iso_code: str
    code_name: str
    auth_code: str
    rrn: str
    scheme: str
    masked_pan: str
    acquirer_id: str
    original_transaction_id: str
    created_at_ms: int
    updated_at_ms: int

    @classmethod
    def from_proto(cls, tx: terminal_pb2.Transaction) -> TransactionView:
        return cls(
            transaction_id=tx.transaction_id,
            type=_enum_name(terminal_pb2.TransactionType, tx.type, "TRANSACTION_TYPE_"),
            state=_enum_name(terminal_pb2.TransactionState, tx.state, "TRANSACTION_STATE_"),
            terminal_id=tx.terminal_id,
            merchant_id=tx.merchant_id,
            stan=tx.stan,
            local_time=tx.local_time,
            amount=amount_of(tx.amount),
            captured=amount_of(tx.captured) if tx.HasField("captured") else None,
            refunded=amount_of(tx.refunded) if tx.HasField("refunded") else None,
            approved=tx.response_code == common_pb2.RESPONSE_CODE_APPROVED,
            iso_code=codes.to_iso(tx.response_code),
            code_name=code_name(tx.response_code),
            auth_code=tx.auth_code,
            rrn=tx.rrn,
            scheme=scheme_name(tx.scheme),
            masked_pan=tx.masked_pan,
            acquirer_id=tx.acquirer_id,
            original_transaction_id=tx.original_transaction_id,
            created_at_ms=tx.created_at_ms,
            updated_at_ms=tx.updated_at_ms,
        )


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to a money-moving request (pay, capture, void, refund).

    ``approved`` is False for a decline; a decline is an answer, not an error. For a refund
    ``transaction_id`` is the refund's own transaction and ``original_transaction_id`` the
    sale it refunds. ``amount`` is what this operation moved: the authorized amount for pay
    and void, the captured amount for capture, the refunded amount for refund.
    """

    operation: str  # pay | capture | void | refund
    approved: bool
    iso_code: str
    code_name: str
    transaction_id: str
    auth_code: str
    rrn: str
    stan: int
    masked_pan: str
    amount: money.Amount | None
    scheme: str
    state: str
    message: str
    idempotency_key: str
    acquirer_id: str = ""
    original_transaction_id: str = ""
    transaction: TransactionView | None = None
    # Chip sales: did the card accept the issuer's ARPC (EMV issuer authentication)? None when
    # no chip data was sent.
    arpc_verified: bool | None = None
    # The switch says this terminal's DUKPT counter is near exhaustion: re-key (key injection).
    rekey_required: bool = False
    # Cross-border (issue 16): the cardholder's billing amount, the rate applied (units of the
    # billing currency per unit of the sale's), and for a DCC sale the disclosed markup.
    billing: money.Amount | None = None
    conversion_rate: str = ""
    dcc_markup_bps: int = 0

    @property
    def status_word(self) -> str:
        return "APPROVED" if self.approved else "DECLINED"


def from_authorize(
    resp: terminal_pb2.AuthorizeResponse, key: str, stan: int, masked_pan: str
) -> Result:
    return Result(
        operation="pay",
        approved=resp.response_code == common_pb2.RESPONSE_CODE_APPROVED,
        iso_code=codes.to_iso(resp.response_code),
        code_name=code_name(resp.response_code),
        transaction_id=resp.transaction_id,
        auth_code=resp.auth_code,
        rrn=resp.rrn,
        stan=resp.stan or stan,
        masked_pan=resp.masked_pan or masked_pan,
        amount=amount_of(resp.amount),
        scheme=scheme_name(resp.scheme),
        state="",
        message=scrub(resp.message),
        idempotency_key=key,
        acquirer_id=resp.acquirer_id,
        billing=(
            amount_of(
                common_pb2.Money(
                    minor_units=resp.billing_minor_units, currency=resp.billing_currency
                )
            )
            if resp.billing_currency
            else None
        ),
        conversion_rate=resp.conversion_rate,
        dcc_markup_bps=resp.dcc_markup_bps,
    )


def from_follow_up(
    operation: str,
    response_code: int,
    tx: terminal_pb2.Transaction | None,
    message: str,
    key: str,
    fallback_amount: money.Amount | None = None,
) -> Result:
    """Capture, void and refund responses share one shape: a code and the transaction."""
    view = TransactionView.from_proto(tx) if tx is not None else None
    amount = view.amount if view else None
    if operation == "capture" and view and view.captured and view.captured.minor_units > 0:
        amount = view.captured
    return Result(
        operation=operation,
        approved=response_code == common_pb2.RESPONSE_CODE_APPROVED,
        iso_code=codes.to_iso(response_code),
        code_name=code_name(response_code),
        transaction_id=view.transaction_id if view else "",
        auth_code=view.auth_code if view else "",
        rrn=view.rrn if view else "",
        stan=view.stan if view else 0,
        masked_pan=view.masked_pan if view else "",
        amount=amount or fallback_amount,
        scheme=view.scheme if view else "",
        state=view.state if view else "",
        message=scrub(message),
        idempotency_key=key,
        acquirer_id=view.acquirer_id if view else "",
        original_transaction_id=view.original_transaction_id if view else "",
        transaction=view,
    )


@dataclass(frozen=True, slots=True)
class EchoResult:
    message: str
    switch_id: str
    server_time_ms: int
    round_trip_ms: float
