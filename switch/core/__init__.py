"""What every job of the switch uses: the request's budget (``budget``), RRN and STAN blocks
(``sequences``), metrics, the terminal registry and its admission checks (``registry``),
idempotency keys (``idempotency``) and the answers for keys a dead request left
(``abandoned_keys``)."""
