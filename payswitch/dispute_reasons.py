"""Chargeback reason codes, Visa- and Mastercard-style (a representative subset).

Visa codes are ``<group>.<n>`` (10 fraud, 11 authorization, 12 processing errors, 13 consumer
disputes); Mastercard's are four digits. A code is accepted for a sale of its own scheme; sales
of other schemes (Amex, JCB... in this network) take any code of the table.
"""

from __future__ import annotations

REASON_CODES: dict[str, dict[str, str]] = {
    "visa": {
        "10.4": "Other fraud - card-absent environment",
        "10.5": "Visa fraud monitoring program",
        "11.3": "No authorization",
        "12.5": "Incorrect amount",
        "12.6.1": "Duplicate processing",
        "13.1": "Merchandise / services not received",
        "13.3": "Not as described or defective merchandise",
    },
    "mastercard": {
        "4808": "Authorization-related chargeback",
        "4834": "Point-of-interaction error",
        "4837": "No cardholder authorization",
        "4853": "Cardholder dispute",
        "4863": "Cardholder does not recognize",
    },
}

ALL_CODES = {code for codes in REASON_CODES.values() for code in codes}


def check_reason(reason_code: str, scheme: str = "") -> str:
    """The code's description; ValueError naming ``reason_code`` when unknown (for the scheme)."""
    table = REASON_CODES.get(scheme)
    if table is not None:
        if reason_code not in table:
            raise ValueError(f"reason_code: {reason_code!r} is not a {scheme} reason code")
        return table[reason_code]
    for codes in REASON_CODES.values():
        if reason_code in codes:
            return codes[reason_code]
    raise ValueError(f"reason_code: unknown chargeback reason code {reason_code!r}")
