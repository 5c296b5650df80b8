"""The switch's domain: what its state is made of, independent of where it is kept.

``transactions`` (states, the state machine, the compare-and-set checks), ``idempotency``
(keys and their answers), ``vault`` (sealed PANs), ``saf`` (store-and-forward items and their
pure changes), ``batches``, ``ledger`` (postings, reconciliation issues, disputes),
``revocations``, ``standin`` (reservation checks) and ``errors``. The store implements these
(``switch.store``); it does not define them. This package imports nothing else of the switch.
"""
