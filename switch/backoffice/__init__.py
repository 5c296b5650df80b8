"""The back office: terminal batches (``batches``), clearing and settlement (``settlement``),
the double-entry ledger (``ledger``), reconciliation (``recon``) and disputes (``disputes``).
The settlement run builds on batches and the ledger; recon and disputes on the ledger."""
