"""The SQLite backend: one file in WAL mode, every call on one store thread (``store``), with
the batches, ledger, revocations, store-and-forward and stand-in parts in their own modules."""
