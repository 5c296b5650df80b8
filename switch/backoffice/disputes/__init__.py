"""Disputes and chargebacks: the issuer's chargeback, the merchant's representment, the outcome.

States and deadlines are in ``cycle``; the service (``service.Disputes``) records disputes in
the state store and posts the compensating ledger entries; ``cli`` is ``payswitch-dispute``.
"""
