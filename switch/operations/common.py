"""Steps shared by capture, void and refund: authenticate, claim, load the original."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from payswitch import codes
from payswitch.logs import get as get_logger
from switch.cardsec.protector import canonical
from switch.core.budget import Budget
from switch.domain.errors import StoreError
from switch.domain.transactions import CasFailed, Changes, Transaction, TxState
from switch.services import Services
from switch.wire.errors import ApiError, NotFound, Unavailable

_log = get_logger("switch.operations")
_SYSTEM_MALFUNCTION = codes.to_enum(codes.SYSTEM_MALFUNCTION)


async def load_own(svc: Services, terminal_id: str, tx_id: str, field: str) -> Transaction:
    """The transaction, if it belongs to this terminal's merchant; NOT_FOUND otherwise (an
    unrelated terminal learns nothing about other merchants' transactions)."""
    tx = await svc.store.get_transaction(tx_id)
    ident = svc.registry.authenticate(terminal_id)
    if tx is None or tx.merchant_id != ident.merchant.id:
        raise NotFound(f"{field}: no such transaction")
    return tx


async def follow_issuer(
    svc: Services, tx_id: str, from_state: TxState, to_state: TxState, changes: Changes
) -> Transaction:
    """Record what the issuer decided. If a concurrent operation on the same authorization
    moved it first, the issuer arbitrated that race: keep the row as the winner left it."""
    try:
        return await svc.store.transition(tx_id, from_state, to_state, changes)
    except CasFailed as exc:
        return exc.current


async def idempotent(
    svc: Services,
    *,
    terminal_id: str,
    key: str,
    operation: str,
    content: tuple,
    budget: Budget,
    response_type: type[Message],
    work: Callable[[], Awaitable[tuple[Message, str]]],
    attach: str = "",
) -> Message:
    """Run ``work`` once per (terminal, key): replay a completed answer, refuse a reused key
    with other content, wait for one still in flight. ``work`` returns (response, tx id).
    ``attach``: the transaction the operation acts on, recorded on the key before ``work``
    runs, so that a key a dead request leaves IN_FLIGHT can be answered from that
    transaction's state (``switch.core.abandoned_keys``)."""
    if not key:
        response, _ = await work()
        return response
    fingerprint = await svc.protector.digest(canonical(operation, *content))
    replay = await svc.guard.claim(terminal_id, key, operation, fingerprint, budget)
    if replay is not None:
        return response_type.FromString(replay.response)
    if attach:
        try:
            await svc.guard.attach(terminal_id, key, attach)
        except StoreError:
            with contextlib.suppress(StoreError):
                await svc.guard.release(terminal_id, key)
            raise Unavailable("state store unavailable; nothing was done, retry") from None
    try:
        response, tx_id = await work()
    except ApiError:
        # Raised by precondition checks before any effect: the key is free again.
        with contextlib.suppress(StoreError):
            await svc.guard.release(terminal_id, key)
        raise
    except Exception:
        # Something may have happened (a network call, a write): the key's answer is final,
        # 96, so a retry under it never repeats the effect; the transaction shows the truth.
        _log.exception("operation_failed", operation=operation)
        response, tx_id = response_type(response_code=_SYSTEM_MALFUNCTION), ""
    try:
        await svc.guard.complete(terminal_id, key, response.SerializeToString(), tx_id)
    except StoreError:
        _log.error("idempotency_complete_failed", operation=operation)
    return response
