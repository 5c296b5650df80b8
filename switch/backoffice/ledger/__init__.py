"""The switch's double-entry ledger: chart of accounts, posting rules per event, balances.

See ``accounts`` (the chart), ``rules`` (what each event posts) and ``ledger`` (posting and
balances); storage is the state store's (``switch.store.ledger_base``).
"""

from switch.backoffice.ledger.events import Event, EventKind
from switch.backoffice.ledger.ledger import Ledger

__all__ = ["Event", "EventKind", "Ledger"]
