"""Settlement: batches, clearing, settlement reports and the fee table (see README)."""
