"""EMV chip data on the network: ``EmvData`` (proto) to and from ``hsm.emv.ArqcData``.

The ARQC covers the CDOL1 data, so the issuer checks the cryptogram over the data elements as
sent and then that those elements describe *this* authorization: amount authorised [9F02] equals
the request's amount in minor units (n12 BCD) and the transaction currency code [5F2A] is the
ISO 4217 numeric code of the request's currency. A genuine ARQC for another amount or currency
is a replayed or altered cryptogram and is treated as invalid (05).

Numeric currency codes: the table below covers the currencies the simulated world uses and the
major ones; a currency outside it cannot be matched and its EMV data is declined (fail closed;
extend the table when a topology needs another currency).
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm.emv import ArqcData
from payswitch.v1 import network_pb2

# ISO 4217 numeric codes.
CURRENCY_NUMERIC: dict[str, int] = {
    "AED": 784, "AUD": 36, "BGN": 975, "BRL": 986, "CAD": 124, "CHF": 756, "CNY": 156,
    "CZK": 203, "DKK": 208, "EUR": 978, "GBP": 826, "HKD": 344, "HUF": 348, "ILS": 376,
    "INR": 356, "JPY": 392, "KRW": 410, "KWD": 414, "MXN": 484, "NOK": 578, "NZD": 554,
    "PLN": 985, "RON": 946, "SAR": 682, "SEK": 752, "SGD": 702, "TRY": 949, "USD": 840,
    "ZAR": 710,
}  # fmt: skip

MAX_N12 = 999_999_999_999


def bcd(value: int, digits: int) -> bytes:
    """``value`` as ``digits`` BCD digits (even count), e.g. bcd(978, 4) == b"\\x09\\x78"."""
    if value < 0 or digits % 2 or value >= 10**digits:
        raise ValueError("value does not fit the BCD field")
    return bytes.fromhex(f"{value:0{digits}d}")


def amount_n12(minor_units: int) -> bytes:
    """Amount authorised [9F02]: minor units as n12 BCD (6 bytes)."""
    return bcd(minor_units, 12)


def currency_n3(currency: str) -> bytes | None:
    """Transaction currency code [5F2A], 2 bytes BCD; None for a currency not in the table."""
    numeric = CURRENCY_NUMERIC.get(currency)
    return None if numeric is None else bcd(numeric, 4)


def to_arqc_data(emv: network_pb2.EmvData) -> ArqcData:
    """The CDOL1 data of a message (lengths are checked when the HSM job serialises it)."""
    return ArqcData(
        amount_authorised=emv.amount_authorised,
        amount_other=emv.amount_other,
        terminal_country=emv.terminal_country_code,
        tvr=emv.tvr,
        currency=emv.transaction_currency_code,
        date=emv.transaction_date,
        txn_type=emv.transaction_type,
        unpredictable_number=emv.unpredictable_number,
        aip=emv.aip,
        atc=emv.atc,
        iad=emv.issuer_application_data,
    )


def to_proto(data: ArqcData, arqc: bytes, pan_sequence_number: str = "00") -> network_pb2.EmvData:
    """The message for an ARQC over ``data`` (what a terminal reads from the card)."""
    return network_pb2.EmvData(
        arqc=arqc,
        atc=data.atc,
        unpredictable_number=data.unpredictable_number,
        pan_sequence_number=pan_sequence_number,
        amount_authorised=data.amount_authorised,
        amount_other=data.amount_other,
        terminal_country_code=data.terminal_country,
        tvr=data.tvr,
        transaction_currency_code=data.currency,
        transaction_date=data.date,
        transaction_type=data.txn_type,
        aip=data.aip,
        issuer_application_data=data.iad,
    )


@dataclass(frozen=True, slots=True)
class ArqcInput:
    """What the issuer's HSM job needs to check one ARQC (no key material)."""

    psn: str
    atc: bytes
    data: ArqcData
    arqc: bytes


def arqc_input(emv: network_pb2.EmvData, minor_units: int, currency: str) -> ArqcInput | None:
    """The ARQC check for a request, or None when the chip data does not match the request's
    amount and currency (or cannot be read): such data is declined without an HSM call."""
    psn = emv.pan_sequence_number or "00"
    if not (0 <= minor_units <= MAX_N12):
        return None
    expected_currency = currency_n3(currency)
    if expected_currency is None or emv.transaction_currency_code != expected_currency:
        return None
    if emv.amount_authorised != amount_n12(minor_units):
        return None
    return ArqcInput(psn=psn, atc=emv.atc, data=to_arqc_data(emv), arqc=emv.arqc)
