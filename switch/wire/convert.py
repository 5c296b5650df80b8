"""Conversions between store records and the API's protobuf messages."""

from __future__ import annotations

import dataclasses
from typing import cast

from payswitch import codes
from payswitch.cards import Scheme
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from switch.domain.transactions import Changes, Transaction, TxType

_SCHEME_TO_PROTO = {
    Scheme.VISA: common_pb2.CARD_SCHEME_VISA,
    Scheme.MASTERCARD: common_pb2.CARD_SCHEME_MASTERCARD,
    Scheme.AMEX: common_pb2.CARD_SCHEME_AMEX,
    Scheme.DISCOVER: common_pb2.CARD_SCHEME_DISCOVER,
    Scheme.JCB: common_pb2.CARD_SCHEME_JCB,
    Scheme.UNIONPAY: common_pb2.CARD_SCHEME_UNIONPAY,
}


def scheme_to_proto(scheme: Scheme | str) -> common_pb2.CardScheme:
    return _SCHEME_TO_PROTO[Scheme(scheme)]


def money(minor: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=currency)


def billed(
    conversion: network_pb2.Conversion, changes: Changes, *, captured: bool = False
) -> Changes:
    """``changes`` with the network's conversion (payswitch.fx) recorded: an authorization's
    or refund's billing amount, rate and table; with ``captured``, a capture's billing amount."""
    amount = conversion.billing_amount
    if captured:
        return dataclasses.replace(changes, billing_captured_minor=amount.minor_units)
    return dataclasses.replace(
        changes,
        billing_minor=amount.minor_units,
        billing_currency=amount.currency,
        fx_rate=conversion.rate,
        rate_table=conversion.rate_table,
    )


def code_to_proto(iso: str) -> common_pb2.ResponseCode:
    if not iso:
        return common_pb2.RESPONSE_CODE_UNSPECIFIED
    # to_enum checked that the number is one of the enum's (protobuf's wrapper says int).
    return cast(common_pb2.ResponseCode, codes.to_enum(iso))


def _state_to_proto(tx: Transaction) -> terminal_pb2.TransactionState:
    value = terminal_pb2.TransactionState.Value(f"TRANSACTION_STATE_{tx.state.value}")
    return cast(terminal_pb2.TransactionState, value)  # Value() checked it is one of the enum's


def transaction_to_proto(tx: Transaction) -> terminal_pb2.Transaction:
    return terminal_pb2.Transaction(
        transaction_id=tx.id,
        type=(
            terminal_pb2.TRANSACTION_TYPE_REFUND
            if tx.type is TxType.REFUND
            else terminal_pb2.TRANSACTION_TYPE_AUTHORIZATION
        ),
        state=_state_to_proto(tx),
        terminal_id=tx.terminal_id,
        merchant_id=tx.merchant_id,
        stan=tx.stan,
        local_time=tx.local_time,
        amount=money(tx.amount_minor, tx.currency),
        captured=money(tx.captured_minor, tx.currency),
        refunded=money(tx.refunded_minor, tx.currency),
        response_code=code_to_proto(tx.response_code),
        auth_code=tx.auth_code,
        rrn=tx.rrn,
        scheme=scheme_to_proto(tx.scheme),
        masked_pan=tx.masked_pan,
        acquirer_id=tx.acquirer_id,
        original_transaction_id=tx.original_id,
        created_at_ms=int(tx.created_at * 1000),
        updated_at_ms=int(tx.updated_at * 1000),
        billing_minor_units=tx.billing_minor,
        billing_currency=tx.billing_currency,
        conversion_rate=tx.fx_rate,
        rate_table=tx.rate_table,
        billing_captured_minor_units=tx.billing_captured_minor,
        dcc_markup_bps=tx.dcc_markup_bps,
        dcc_local_minor_units=tx.dcc_local_minor,
        dcc_local_currency=tx.dcc_local_currency,
    )
