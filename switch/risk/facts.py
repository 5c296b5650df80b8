"""One request as the risk stage sees it (``Facts``: typed, the card as its token, never a
PAN) and what it reads and writes in the store (``observation``, ``outcome_tallies``)."""

from __future__ import annotations

from dataclasses import dataclass

from payswitch import codes
from switch.domain.risk import Observation, Sighting, Tally

DAY = 86400
# How long sightings are remembered after the last time.
CARD_PLACES_TTL_S = 90 * DAY  # the terminals and merchants a card was used at
CARD_COUNTRY_TTL_S = DAY  # the countries of a card's last day (impossible travel)
TERMINAL_CARDS_TTL_S = 3600  # the cards a terminal saw in its last hour
TERMINAL_ADDRESSES_TTL_S = 90 * DAY  # the addresses a terminal connected from


@dataclass(frozen=True, slots=True)
class Facts:
    card_token: str
    bin: str
    terminal_id: str
    merchant_id: str
    address: str  # the terminal's network address as the switch saw it ("" unknown)
    amount: int  # minor units
    currency: str
    mcc: str
    country: str  # the terminal's country ("" unknown)
    entry_mode: int
    has_pin: bool
    local_hour: int  # 0-23, the terminal's local time
    now: float
    small: bool  # at or below the currency's small amount (card testing)

    @property
    def card(self) -> str:
        return "c:" + self.card_token

    @property
    def terminal(self) -> str:
        return "t:" + self.terminal_id

    @property
    def merchant(self) -> str:
        return "m:" + self.merchant_id

    @property
    def addr(self) -> str:
        return "a:" + (self.address or "-")


def observation(f: Facts) -> Observation:
    """Read every subject's counters (card, terminal, merchant, address) and the card's and
    terminal's sightings; add this request's count and amount to each subject."""
    subjects = (f.card, f.terminal, f.merchant, f.addr)
    tallies: list[Tally] = []
    for s in subjects:
        tallies += [Tally(s, "n", 1), Tally(s, "n." + f.currency, 1)]
        tallies.append(Tally(s, "amt." + f.currency, f.amount))
        if f.small:
            tallies.append(Tally(s, "small", 1))
    sightings = [
        Sighting(f.card, "terminal", f.terminal_id, CARD_PLACES_TTL_S),
        Sighting(f.card, "merchant", f.merchant_id, CARD_PLACES_TTL_S),
        Sighting(f.terminal, "card", f.card_token, TERMINAL_CARDS_TTL_S),
    ]
    if f.country:
        sightings.append(Sighting(f.card, "country", f.country, CARD_COUNTRY_TTL_S))
    if f.address:
        sightings.append(Sighting(f.terminal, "addr", f.address, TERMINAL_ADDRESSES_TTL_S))
    return Observation(subjects, (f.card, f.terminal), tuple(tallies), tuple(sightings))


def outcome_tallies(f: Facts, code: str) -> tuple[Tally, ...]:
    """What the answer adds once known: a decline (any code but 00) to every subject, a wrong
    PIN (55) to the card and the terminal."""
    if code == codes.APPROVED or not code:
        return ()
    subjects = (f.card, f.terminal, f.merchant, f.addr)
    tallies = [Tally(s, "decl", 1) for s in subjects]
    if code == codes.INCORRECT_PIN:
        tallies += [Tally(f.card, "badpin", 1), Tally(f.terminal, "badpin", 1)]
    return tuple(tallies)
