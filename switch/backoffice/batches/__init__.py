"""Terminal batches: joining (hooks in switch.operations), totals and CloseBatch."""
