"""The cross-border fields on the terminal link (issue 16): appended to the MAC'd forms only
when set, so every published vector holds and a set field cannot be dropped or changed."""

from __future__ import annotations

from payswitch.seclink import canonical_response, mac_input, tlv
from payswitch.v1 import common_pb2, terminal_pb2


def _request(**dcc: str) -> terminal_pb2.AuthorizeRequest:
    return terminal_pb2.AuthorizeRequest(
        terminal_id="T-0001",
        merchant_id="M-GROCER",
        stan=7,
        local_time="2026-12-07T10:00:00",
        amount=common_pb2.Money(minor_units=10_000, currency="EUR"),
        **dcc,
    )


def test_a_dcc_choice_is_appended_to_the_request_form_only_when_set() -> None:
    plain = mac_input(_request())
    chosen = mac_input(_request(dcc_currency="USD", dcc_rate="1.11497500"))
    assert chosen == plain + tlv(14, b"USD") + tlv(15, b"1.11497500")
    other = mac_input(_request(dcc_currency="USD", dcc_rate="1.11497501"))
    assert other != chosen


def test_billing_fields_are_appended_to_the_answer_form_only_when_set() -> None:
    resp = terminal_pb2.AuthorizeResponse(transaction_id="t", rrn="000000000001")
    plain = canonical_response("authorize", resp)
    resp.billing_minor_units = 1336
    resp.billing_currency = "USD"
    resp.conversion_rate = "1.08250000"
    resp.rate_table = "banknet-2025-01-01"
    form = canonical_response("authorize", resp)
    assert form == plain + tlv(17, b"1336") + tlv(18, b"USD") + tlv(19, b"1.08250000") + tlv(
        20, b"banknet-2025-01-01"
    )
    tx = terminal_pb2.Transaction(transaction_id="t")
    bare = canonical_response(
        "get_transaction", terminal_pb2.GetTransactionResponse(transaction=tx)
    )
    tx.dcc_markup_bps = 300
    marked = canonical_response(
        "get_transaction", terminal_pb2.GetTransactionResponse(transaction=tx)
    )
    assert marked != bare and len(marked) > len(bare)
