"""GetTransaction: by id, or by the idempotency key that created it (a terminal that lost
an answer finds out what happened without sending the payment again)."""

from __future__ import annotations

import time

from payswitch.v1 import terminal_pb2
from switch.operations.common import load_own
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
        tx_id = req.transaction_id
    elif which == "idempotency_key":
        key = validation.idempotency_key(req.idempotency_key)
        if not key:
            raise InvalidArgument("idempotency_key", "is required")
        record = await svc.store.get_idempotency(req.terminal_id, key, time.time())
        if record is None or not record.transaction_id:
            raise NotFound("idempotency_key: no transaction under this key")
        tx_id = record.transaction_id
    else:
        raise InvalidArgument("lookup", "give transaction_id or idempotency_key")
    tx = await load_own(svc, req.terminal_id, tx_id, which)
    return terminal_pb2.GetTransactionResponse(transaction=transaction_to_proto(tx))
