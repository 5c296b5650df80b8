"""ARQC replay defence: each card's application transaction counter (ATC) history, the rule
the issuer applies in its books and the network's stand-in applies to the history the issuer
publishes in its stand-in file (``payswitch.stipfile``).

A chip increments its ATC (EMV tag 9F36, two bytes) for every cryptogram it makes, so a
genuine ARQC never comes twice with one ATC. The issuer keeps, per card (keyed by a digest of
PAN and PAN sequence number, ``issuer.crypto``: never the PAN), the highest ATC it has
accepted and a window of the ``window`` ATCs below it as a bit set, as issuers' hosts do:

- an ATC above the highest moves the window up: accepted;
- an ATC inside the window not used yet (a cryptogram that arrived out of order, e.g. one
  made offline or delayed): accepted, marked;
- the highest itself or a marked ATC (the same cryptogram again, or another cryptogram under
  a counter already used): a replay, refused;
- an ATC more than ``window`` below the highest (rolled back, e.g. a clone reset to 1):
  refused.

Only an ARQC that verified in the HSM touches the history (a forged one must not burn the
card's counters). The pure function below decides; ``issuer.books`` applies it in the same
SQLite transaction as the authorization, so a refusal holds nothing; the switch's stand-in
applies it to the history of the issuer's last stand-in file (``switch.cardsec.standin``).
"""

from __future__ import annotations

from dataclasses import dataclass

from payswitch.replay_window import Replayed, TooOld, Window, accept

MAX_WINDOW = 62  # ATCs below the highest: with the highest itself, 63 bits (a SQLite INTEGER)
ATC_MAX = 0xFFFF


@dataclass(frozen=True, slots=True)
class AtcUse:
    """One verified cryptogram's counter: ``card`` the history key, ``atc`` its ATC."""

    card: str
    atc: int


@dataclass(frozen=True, slots=True)
class AtcState:
    """A card's history: the highest ATC accepted and ``seen``, the window below and at it
    (``payswitch.replay_window``: bit i set when ATC ``highest - i`` was used; bit 0, the
    highest itself, always)."""

    highest: int
    seen: int = 1


class AtcRefused(Exception):
    """The cryptogram's counter was used already (``replay``) or is too far behind."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "replayed" or "too_old": log word, never card data


def advance(state: AtcState | None, atc: int, window: int) -> AtcState:
    """The history after accepting ``atc``; raises ``AtcRefused`` for a replay or an ATC too
    far behind. ``window``: how many counters below the highest are still accepted once."""
    if not 0 <= atc <= ATC_MAX:
        raise AtcRefused("too_old")
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"atc window must be 1..{MAX_WINDOW}")
    before = None if state is None else Window(state.highest, state.seen)
    try:
        after = accept(before, atc, window + 1)
    except Replayed:
        raise AtcRefused("replayed") from None
    except TooOld:
        raise AtcRefused("too_old") from None
    return AtcState(after.highest, after.bits)
