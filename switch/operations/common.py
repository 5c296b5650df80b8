"""Steps shared by capture, void and refund: the key held once, the original loaded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from switch.cardsec.protector import canonical
from switch.core.budget import Budget
from switch.domain.transactions import CasFailed, Changes, Transaction, TxState
from switch.services import Services
from switch.wire.errors import NotFound

M = TypeVar("M", bound=Message)


async def load_own(svc: Services, terminal_id: str, tx_id: str, field: str) -> Transaction:
    """The transaction, if it belongs to this (admitted) terminal's merchant; NOT_FOUND
    otherwise (an unrelated terminal learns nothing about other merchants' transactions)."""
    tx = await svc.store.get_transaction(tx_id)
    ident = svc.registry.identity(terminal_id)
    if tx is None or tx.merchant_id != ident.merchant.id:
        raise NotFound(f"{field}: no such transaction")
    return tx


async def current_state(svc: Services, tx_id: str) -> Transaction:
    """The transaction as it is now: loaded by this request already, so it exists."""
    tx = await svc.store.get_transaction(tx_id)
    assert tx is not None, tx_id
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
    content: tuple[object, ...],
    budget: Budget,
    response_type: type[M],
    work: Callable[[], Awaitable[tuple[M, str]]],
    attach: str = "",
) -> M:
    """Run ``work`` once per (terminal, key) (``IdempotencyGuard.once``, the helper the
    pipeline holds its key with too); the fingerprint is a keyed digest of the operation and
    ``content``. Without a key, ``work`` just runs."""
    if not key:
        response, _ = await work()
        return response
    fingerprint = await svc.protector.digest(canonical(operation, *content))
    return await svc.guard.once(
        scope=terminal_id,
        key=key,
        operation=operation,
        fingerprint=fingerprint,
        budget=budget,
        response_type=response_type,
        work=work,
        attach=attach,
    )
