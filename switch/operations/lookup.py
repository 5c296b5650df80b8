"""GetTransaction: by id, or by the idempotency key that created it (a terminal that lost
an answer finds out what happened without sending the payment again).

The answer carries money state, so the lookup is MAC'd and counted like the money-moving
requests (``switch.operations.common``: MAC, then the device's counter) and its answer is
sealed with a response MAC for the request's KSN. The lookup is open to every terminal of the
transaction's merchant, whatever the follow-up policy: it moves nothing."""

from __future__ import annotations

import time

from payswitch.v1 import terminal_pb2
from switch.cardsec.answers import seal
from switch.operations.common import authenticate, load_own, use_device
from switch.services import Services
from switch.wire import validation
from switch.wire.convert import transaction_to_proto
from switch.wire.errors import InvalidArgument, NotFound


async def get_transaction(
    svc: Services, req: terminal_pb2.GetTransactionRequest
) -> terminal_pb2.GetTransactionResponse:
    validation.identifier(req.terminal_id, "terminal_id")
    which = req.WhichOneof("lookup")
    if which == "transaction_id":
        validation.transaction_id(req.transaction_id, "transaction_id")
    elif which == "idempotency_key":
        if not validation.idempotency_key(req.idempotency_key):
            raise InvalidArgument("idempotency_key", "is required")
    else:
        raise InvalidArgument("lookup", "give transaction_id or idempotency_key")
    ksn, _ = await authenticate(svc, req)  # before the store is read
    await use_device(svc, req.terminal_id, ksn)
    tx_id = req.transaction_id
    if which == "idempotency_key":
        record = await svc.store.get_idempotency(req.terminal_id, req.idempotency_key, time.time())
        if record is None or not record.transaction_id:
            raise NotFound("idempotency_key: no transaction under this key")
        tx_id = record.transaction_id
    tx = await load_own(svc, req.terminal_id, tx_id, which)
    response = terminal_pb2.GetTransactionResponse(transaction=transaction_to_proto(tx))
    await seal(svc.protector, bytes(req.ksn), "get_transaction", response, req.terminal_id)
    return response
