"""Where a request goes: the merchant's acquirers for a card's scheme (``router``), the
connectors that call them (``connectors``), per-acquirer circuit breakers (``breakers``), and
stand-in when no acquirer can take it (``standin``)."""
