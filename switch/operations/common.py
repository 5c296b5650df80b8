"""Steps shared by capture, void, refund and batch close: the request MAC checked, the
original loaded under the follow-up policy, the device's counter advanced, the key held once,
the answer sealed.

Order (each step before anything the next one changes): field validation, then the request MAC
and the idempotency fingerprint in one HSM job (``authenticate``; a forged or altered request
is refused UNAUTHENTICATED before anything is read or held), then the original transaction
(``load_own``), then the key (``idempotent``), and inside it, first, the device's counter
(``use_device``: one conditional store write; a replayed KSN or another terminal's device is
refused INVALID_ARGUMENT naming ``ksn`` and the key is released, so nothing is left changed),
then the operation's own work. The answer gets its response MAC before it is kept under the
key (``switch.cardsec.answers.seal``), so a retry with the same bytes (the same KSN) is answered
with the same MAC'd bytes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from hsm.dukpt import Ksn
from payswitch.logs import get as get_logger
from payswitch.seclink import OperationRequest, operation_mac_input, operation_of
from payswitch.v1 import terminal_pb2
from switch.cardsec.answers import seal
from switch.cardsec.protector import RequestRejected
from switch.core.budget import Budget
from switch.domain.devices import Advance, DeviceRefused, DeviceUse
from switch.domain.transactions import CasFailed, Changes, Transaction, TxState
from switch.services import Services
from switch.wire import validation
from switch.wire.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

M = TypeVar("M", bound=Message)
_log = get_logger("switch.operations")

SAME_TERMINAL = "same_terminal"


async def authenticate(svc: Services, req: OperationRequest) -> tuple[Ksn, str]:
    """The request's KSN and MAC checked (fields first, then the CMAC in the HSM); returns the
    KSN and the idempotency fingerprint of the MAC'd content without the key ("" without a
    key). Raises InvalidArgument naming ``ksn`` or ``mac``, or Unauthenticated."""
    ksn = validation.ksn(req.ksn, "ksn")
    validation.mac(req.mac)
    # A lookup's idempotency_key is what it looks up, not a key it holds.
    keyed = bool(req.idempotency_key) and not isinstance(req, terminal_pb2.GetTransactionRequest)
    try:
        fingerprint = await svc.protector.verify_mac(
            bytes(req.ksn),
            operation_mac_input(req),
            bytes(req.mac),
            operation_mac_input(req, "") if keyed else None,
        )
    except RequestRejected:
        _log.warning(
            "request_mac_failed",
            operation=operation_of(req),
            terminal=req.terminal_id,
            ksn=ksn.hex(),
        )
        raise Unauthenticated("mac: the request MAC does not verify") from None
    return ksn, fingerprint


async def use_device(
    svc: Services,
    terminal_id: str,
    ksn: Ksn,
    *,
    local_date: str = "",
    stan: int = 0,
    resend_ok: bool = False,
) -> None:
    """Advance the device's counter for this request (``switch.domain.devices``), or refuse it
    (INVALID_ARGUMENT naming ``ksn``) with nothing written. ``resend_ok``: the device's latest
    transmission sent again goes on (a refund: its STAN then answers 94); otherwise it is a
    replay like any used counter."""
    use = DeviceUse(
        ksn.ikid.hex(),
        terminal_id,
        ksn.counter,
        local_date,
        stan,
        registered_only=svc.config.device_binding == "registered",
    )
    try:
        outcome = await svc.store.advance_device(use, time.time())
    except DeviceRefused as exc:
        _log.warning(
            "device_refused", terminal=terminal_id, ksn=ksn.hex(), reason=type(exc).__name__
        )
        raise InvalidArgument("ksn", str(exc)) from None
    if outcome is Advance.SAME_TRANSMISSION and not resend_ok:
        _log.warning("device_refused", terminal=terminal_id, ksn=ksn.hex(), reason="Resend")
        raise InvalidArgument("ksn", "this KSN was used already: a new request needs a new KSN")


def follow_up_policy(svc: Services, terminal_id: str) -> str:
    """``same_terminal`` or ``same_merchant``: the merchant's own, else the switch's."""
    merchant = svc.registry.identity(terminal_id).merchant
    return merchant.follow_ups or svc.config.follow_ups


async def load_own(
    svc: Services, terminal_id: str, tx_id: str, field: str, *, follow_up: bool = False
) -> Transaction:
    """The transaction, if it belongs to this (admitted) terminal's merchant; NOT_FOUND
    otherwise (an unrelated terminal learns nothing about other merchants' transactions).
    ``follow_up`` (capture, void, refund): under the ``same_terminal`` policy another terminal
    of the merchant is refused PERMISSION_DENIED."""
    tx = await svc.store.get_transaction(tx_id)
    ident = svc.registry.identity(terminal_id)
    if tx is None or tx.merchant_id != ident.merchant.id:
        raise NotFound(f"{field}: no such transaction")
    if follow_up and tx.terminal_id != terminal_id:
        if follow_up_policy(svc, terminal_id) == SAME_TERMINAL:
            raise PermissionDenied(
                f"{field}: another terminal's transaction (follow-up policy same_terminal)"
            )
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
    req: OperationRequest,
    ksn: Ksn,
    fingerprint: str,
    budget: Budget,
    response_type: type[M],
    work: Callable[[], Awaitable[tuple[M, str]]],
    attach: str = "",
    local_date: str = "",
    stan: int = 0,
) -> M:
    """Run ``work`` once per (terminal, key) (``IdempotencyGuard.once``, the helper the
    pipeline holds its key with too), after the device's counter (``use_device``); the answer
    sealed for the request's KSN. Without a key, ``work`` just runs (after the counter)."""
    operation = operation_of(req)
    terminal_id = req.terminal_id

    async def counted() -> tuple[M, str]:
        await use_device(
            svc, terminal_id, ksn, local_date=local_date, stan=stan, resend_ok=bool(stan)
        )
        return await work()

    async def sealed(response: M) -> None:
        await seal(svc.protector, bytes(req.ksn), operation, response, terminal_id)

    if not req.idempotency_key:
        response, _ = await counted()
        await sealed(response)
        return response
    return await svc.guard.once(
        scope=terminal_id,
        key=req.idempotency_key,
        operation=operation,
        fingerprint=fingerprint,
        budget=budget,
        response_type=response_type,
        work=counted,
        attach=attach,
        seal=sealed,
    )
