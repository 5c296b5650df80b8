"""Store-and-forward: messages the switch owes the network, kept in the state store and sent
by a worker until acknowledged (``queue.SafQueue``); what fails for too long is dead-lettered
for an operator to list and replay."""

from switch.domain.saf import SafItem, SafKind
from switch.saf.queue import NotDelivered, SafQueue

__all__ = ["NotDelivered", "SafItem", "SafKind", "SafQueue"]
