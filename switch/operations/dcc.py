"""QuoteDcc: the DCC offer for a card at this terminal's merchant (``switch.core.dcc``).

Read-only: nothing is stored, no key is held, no money moves, so no request MAC or idempotency
key (the binding choice is the MAC'd AuthorizeRequest's ``dcc_currency``/``dcc_rate``, checked
again once the card is decrypted). The card is named by its BIN only (first six digits).
"""

from __future__ import annotations

from payswitch import fx
from payswitch.v1 import terminal_pb2
from switch.services import Services
from switch.wire import validation
from switch.wire.convert import money
from switch.wire.errors import InvalidArgument


def quote_dcc(svc: Services, req: terminal_pb2.QuoteDccRequest) -> terminal_pb2.QuoteDccResponse:
    validation.identifier(req.terminal_id, "terminal_id")
    validation.identifier(req.merchant_id, "merchant_id")
    ident = svc.registry.identity(req.terminal_id)
    if ident.merchant.id != req.merchant_id:
        raise InvalidArgument("merchant_id", "not this terminal's merchant")
    validation.amount(req.amount, req.HasField("amount"))
    if len(req.card_bin) != 6 or not req.card_bin.isdigit():
        raise InvalidArgument("card_bin", "must be the card's first six digits")
    offer = None
    if svc.dcc is not None:
        offer = svc.dcc.offer(req.card_bin, req.amount.minor_units, req.amount.currency)
    if offer is None:
        return terminal_pb2.QuoteDccResponse(eligible=False, message="no DCC offer for this card")
    return terminal_pb2.QuoteDccResponse(
        eligible=True,
        cardholder_amount=money(offer.billing_minor, offer.billing_currency),
        rate=fx.format_rate(offer.rate),
        wholesale_rate=fx.format_rate(offer.wholesale_rate),
        markup_bps=offer.markup_bps,
        rate_table=offer.table_version,
        message=f"includes a {offer.markup_bps / 100:.2f}% markup over the scheme rate",
    )
