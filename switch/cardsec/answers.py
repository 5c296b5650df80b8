"""Answers the terminal can trust: the re-key signal and the response MAC, set on every answer
to a money-moving request just before it is recorded or sent.

The MAC covers ``payswitch.seclink.canonical_response`` (the operation's name and every field
of the answer but ``mac``) under the response key of the request's own KSN, so a retry that
resends the same bytes (same KSN) gets the stored answer and can check it. ``rekey_required``
is set first, so the MAC covers it too. If the HSM cannot compute the MAC the answer goes out
without one (logged, ``payswitch_response_mac_failed``): the terminal treats it as untrusted
and asks again or reverses; the switch never holds back an outcome it has recorded.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from hsm.dukpt import KSN_LEN
from payswitch.logs import get as get_logger
from payswitch.seclink import canonical_response
from switch.cardsec.protector import CardProtector
from switch.core import metrics
from switch.domain.devices import needs_rekey

_log = get_logger("switch.answers")


async def seal(
    protector: CardProtector, ksn: bytes, operation: str, response: Message, terminal_id: str
) -> None:
    """Set ``rekey_required`` and ``mac`` on ``response`` (in place) for the request's KSN."""
    answer: Any = response  # every answer message has these two fields
    if len(ksn) != KSN_LEN:
        return  # a request refused before its KSN was checked gets no answer message anyway
    counter = int.from_bytes(ksn[8:], "big")
    if needs_rekey(counter):
        answer.rekey_required = True
        metrics.get().rekey.labels(operation).inc()
        _log.warning(
            "dukpt_rekey_required",
            terminal=terminal_id,
            device=bytes(ksn[:8]).hex(),
            counter=counter,
        )
    answer.ClearField("mac")
    try:
        answer.mac = await protector.response_mac(bytes(ksn), canonical_response(operation, answer))
    except Exception as exc:  # the outcome stands; the terminal sees an unMAC'd answer
        metrics.get().response_mac_failed.labels(operation).inc()
        _log.error("response_mac_failed", operation=operation, error=type(exc).__name__)
