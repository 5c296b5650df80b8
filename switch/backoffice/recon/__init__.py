"""Reconciliation: the switch's transactions against the acquirer's settlement reports and the
issuers' books; every discrepancy becomes a stored issue an operator resolves.

``sources`` loads the three sides, ``engine`` compares them (pure), ``job`` stores the issues
(idempotent re-runs), ``report`` prints them, ``cli`` is ``payswitch-recon``.
"""
