"""Write docs/vectors/terminal-v1.json: the terminal link's published test vectors.

    .venv/bin/python scripts/make_vectors.py            # (re)write the file (make vectors)
    .venv/bin/python scripts/make_vectors.py --check    # exit 1 when the committed file differs

Every value follows from fixed inputs and the ANSI X9.24-3-2017 sample base derivation key, so
an implementation in any language can check itself against the file, step by step. The DUKPT
keys are derived here from the BDK with the X9.24-3 host algorithm; card data, PIN blocks and
MACs are made by the terminal-side code (``terminals.secure_element``, ``terminals.pinpad``,
``payswitch.seclink``). The project's tests check the file against the SDK
(tests/terminals/test_terminal_vectors.py), against the switch's HSM code in SoftHSM
(tests/hsm/test_hsm_vectors.py) and its keys against the values X9 published
(tests/hsm/test_dukpt.py). The file's schema is documented in its own ``schema`` member and in
docs/terminal-protocol.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from google.protobuf import json_format
from google.protobuf.message import Message

from hsm.dukpt import KeyUsage, Ksn, derivation_data
from hsm.pinblock import pan_field, pin_field
from payswitch import seclink
from payswitch.v1 import common_pb2, network_pb2, terminal_pb2
from terminals.pinpad import sim_encipher_pin_block
from terminals.secure_element import SecureElement

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "vectors" / "terminal-v1.json"

# ANSI X9.24-3-2017 sample values (Annex B, and the X9 supplement's test vectors): TEST ONLY.
BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = bytes.fromhex("1234567890123456")

TERMINAL, MERCHANT = "T-0001", "M-GROCER"
LOCAL_TIME = "2026-11-21T14:03:05"
SALE_TX = "3f2a9c1e5b7d4f60a1b2c3d4e5f60718"
OTHER_TX = "9d8c7b6a5f4e3d2c1b0a99887766554f"
VOID_TX = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
REFUND_TX = "5e6f708192a3b4c5d6e7f8091a2b3c4d"

USAGES = {
    "pin_encryption": KeyUsage.PIN_ENCRYPTION,
    "mac_generation": KeyUsage.MAC_GENERATION,
    "mac_verification": KeyUsage.MAC_VERIFICATION,
    "data_encryption": KeyUsage.DATA_ENCRYPT,
}

SCHEMA = {
    "schema": "'payswitch-terminal-vectors/1': this layout",
    "about": "what the file is for",
    "layout": "this description of the members",
    "terminal_id, merchant_id": "the terminal and merchant every case uses",
    "dukpt": (
        "bdk, initial_key_id, initial_key, initial_key_kcv (hex; KCV = first 3 bytes of "
        "AES-CMAC(IK, 16 zero bytes)); transactions[]: counter, ksn (12 bytes hex: initial key "
        "ID || counter big-endian), derivation_key (the counter's transaction derivation key), "
        "keys{pin_encryption, mac_generation, mac_verification, data_encryption} (working keys, "
        "X9.24-3 key usages 1000, 2000, 2001, 3000, AES-128)"
    ),
    "cases[]": (
        "name; operation (the canonical forms' name: authorize, capture, void, refund, "
        "get_transaction, close_batch); rpc (the gRPC method); counter and ksn (the DUKPT "
        "transaction of the request); request (the request message, protobuf JSON mapping, "
        "proto field names, bytes base64, 64-bit integers as strings: parse it with any "
        "protobuf JSON parser); request_mac_input (hex: the canonical request form the MAC "
        "covers); request_mac (hex); response, response_mac_input, response_mac (the same for "
        "a sample answer). authorize cases also have card {pan, expiry, cvv2}, card_plaintext "
        "(hex: the serialised CardData; any valid protobuf encoding of it is accepted, this is "
        "the canonical one), card_ciphertext (hex: AES-128-CBC, zero IV, PKCS#7, under the "
        "data-encryption key); pin {pin, fill (the 8 random bytes of the PIN field), pin_field, "
        "pan_field, pin_block} (ISO 9564-1 format 4 under the PIN-encryption key) when a PIN "
        "was entered; emv_bytes (hex: the chip data as the MAC covers it) for a chip sale"
    ),
}


def _hex(data: bytes) -> str:
    return data.hex().upper()


def _aes(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - X9.24-3 derivation
    return enc.update(block) + enc.finalize()


def initial_key() -> bytes:
    return _aes(BDK, derivation_data(KeyUsage.KEY_DERIVATION_INITIAL, IKID))


def derivation_key(counter: int) -> bytes:
    """X9.24-3 host algorithm: one derivation per 1-bit of the counter, high to low."""
    key, working, mask = initial_key(), 0, 1 << 31
    while mask:
        if counter & mask:
            working |= mask
            key = _aes(key, derivation_data(KeyUsage.KEY_DERIVATION, IKID, working))
        mask >>= 1
    return key


def working_key(counter: int, usage: KeyUsage) -> bytes:
    return _aes(derivation_key(counter), derivation_data(usage, IKID, counter))


def kcv(key: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(bytes(16))
    return c.finalize()[:3]


def _json(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _money(minor: int, currency: str = "EUR") -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=currency)


SE = SecureElement.with_initial_key(IKID, initial_key())


def _transaction(**kw: Any) -> terminal_pb2.Transaction:
    base: dict[str, Any] = {
        "terminal_id": TERMINAL,
        "merchant_id": MERCHANT,
        "local_time": LOCAL_TIME,
        "scheme": common_pb2.CARD_SCHEME_VISA,
        "masked_pan": "411111******1111",
        "acquirer_id": "acq-alpha",
        "created_at_ms": 1795269785000,
        "updated_at_ms": 1795269791000,
    }
    base.update(kw)
    return terminal_pb2.Transaction(**base)


SALE = _transaction(
    transaction_id=SALE_TX,
    type=terminal_pb2.TRANSACTION_TYPE_AUTHORIZATION,
    state=terminal_pb2.TRANSACTION_STATE_CAPTURED,
    stan=101,
    amount=_money(1250),
    captured=_money(1000),
    response_code=common_pb2.RESPONSE_CODE_APPROVED,
    auth_code="A1B2C3",
    rrn="633214000101",
)

CHIP = network_pb2.EmvData(
    arqc=bytes.fromhex("8E2F3A9C41D07B65"),
    atc=bytes.fromhex("001C"),
    unpredictable_number=bytes.fromhex("5A3C9E01"),
    pan_sequence_number="01",
    amount_authorised=bytes.fromhex("000000004999"),
    amount_other=bytes(6),
    terminal_country_code=bytes.fromhex("0276"),
    tvr=bytes(5),
    transaction_currency_code=bytes.fromhex("0978"),
    transaction_date=bytes.fromhex("261121"),
    transaction_type=b"\x00",
    aip=bytes.fromhex("1800"),
    issuer_application_data=bytes.fromhex("06010A03A00000"),
)


def _sealed(operation: str, counter: int, response: Message) -> tuple[bytes, bytes]:
    form = seclink.canonical_response(operation, response)
    mac = SE.transaction_at(counter).response_mac(form)
    response.mac = mac  # type: ignore[attr-defined]
    return form, mac


def _authorize_case(
    name: str,
    counter: int,
    *,
    stan: int,
    amount: common_pb2.Money,
    entry: int,
    pan: str,
    expiry: str,
    cvv2: str,
    pin: str,
    fill: bytes,
    emv: network_pb2.EmvData | None,
    key: str,
    response: terminal_pb2.AuthorizeResponse,
) -> dict[str, Any]:
    txn = SE.transaction_at(counter)
    plaintext = seclink.card_plaintext(pan, expiry, cvv2)
    req = terminal_pb2.AuthorizeRequest(
        idempotency_key=key,
        terminal_id=TERMINAL,
        merchant_id=MERCHANT,
        stan=stan,
        local_time=LOCAL_TIME,
        amount=amount,
        entry_mode=entry,  # type: ignore[arg-type]
        encrypted_card=terminal_pb2.EncryptedCard(
            ksn=bytes(txn.ksn), ciphertext=txn.encrypt_card_data(plaintext)
        ),
    )
    case: dict[str, Any] = {
        "name": name,
        "operation": "authorize",
        "rpc": "/payswitch.v1.TerminalService/Authorize",
        "counter": counter,
        "ksn": _hex(bytes(txn.ksn)),
        "card": {"pan": pan, "expiry": expiry, "cvv2": cvv2},
        "card_plaintext": _hex(plaintext),
        "card_ciphertext": _hex(req.encrypted_card.ciphertext),
    }
    if pin:
        req.pin_block = sim_encipher_pin_block(txn.pin_encrypt_block, pin, pan, fill)
        case["pin"] = {
            "pin": pin,
            "fill": _hex(fill),
            "pin_field": _hex(bytes(pin_field(pin, fill))),
            "pan_field": _hex(bytes(pan_field(pan))),
            "pin_block": _hex(req.pin_block),
        }
    if emv is not None:
        req.emv.CopyFrom(emv)
        case["emv_bytes"] = _hex(seclink.emv_bytes(emv))
    form = seclink.mac_input(req)
    req.mac = txn.mac(form)
    rform, rmac = _sealed("authorize", counter, response)
    case.update(
        request=_json(req),
        request_mac_input=_hex(form),
        request_mac=_hex(req.mac),
        response=_json(response),
        response_mac_input=_hex(rform),
        response_mac=_hex(rmac),
    )
    return case


def _operation_case(
    name: str, counter: int, operation: str, rpc: str, req: Any, response: Message
) -> dict[str, Any]:
    txn = SE.transaction_at(counter)
    req.ksn = bytes(txn.ksn)
    form = seclink.operation_mac_input(req)
    req.mac = txn.mac(form)
    rform, rmac = _sealed(operation, counter, response)
    return {
        "name": name,
        "operation": operation,
        "rpc": f"/payswitch.v1.TerminalService/{rpc}",
        "counter": counter,
        "ksn": _hex(bytes(txn.ksn)),
        "request": _json(req),
        "request_mac_input": _hex(form),
        "request_mac": _hex(req.mac),
        "response": _json(response),
        "response_mac_input": _hex(rform),
        "response_mac": _hex(rmac),
    }


def cases() -> list[dict[str, Any]]:
    approved = common_pb2.RESPONSE_CODE_APPROVED
    out = [
        _authorize_case(
            "authorize-manual-pin-cvv2",
            1,
            stan=101,
            amount=_money(1250),
            entry=common_pb2.ENTRY_MODE_MANUAL,
            pan="4111111111111111",
            expiry="2812",
            cvv2="123",
            pin="1234",
            fill=bytes.fromhex("5A2F0C6B91D3E847"),
            emv=None,
            key="vec-sale-1",
            response=terminal_pb2.AuthorizeResponse(
                transaction_id=SALE_TX,
                response_code=approved,
                auth_code="A1B2C3",
                rrn="633214000101",
                stan=101,
                amount=_money(1250),
                scheme=common_pb2.CARD_SCHEME_VISA,
                masked_pan="411111******1111",
                acquirer_id="acq-alpha",
                message="approved",
            ),
        ),
        _authorize_case(
            "authorize-chip-pin-declined",
            2,
            stan=102,
            amount=_money(4999),
            entry=common_pb2.ENTRY_MODE_CHIP,
            pan="5555555555554444",
            expiry="2903",
            cvv2="",
            pin="482910",
            fill=bytes.fromhex("C3E1077D2B9F4A16"),
            emv=CHIP,
            key="vec-sale-2",
            response=terminal_pb2.AuthorizeResponse(
                transaction_id=OTHER_TX,
                response_code=common_pb2.RESPONSE_CODE_INSUFFICIENT_FUNDS,
                rrn="633214000102",
                stan=102,
                amount=_money(4999),
                scheme=common_pb2.CARD_SCHEME_MASTERCARD,
                masked_pan="555555******4444",
                acquirer_id="acq-beta",
                message="insufficient funds",
                arpc=bytes.fromhex("7C1D5E90A2B3F468"),
            ),
        ),
        _authorize_case(
            "authorize-magstripe-stood-in",
            3,
            stan=103,
            amount=_money(1500, "JPY"),
            entry=common_pb2.ENTRY_MODE_MAGSTRIPE,
            pan="4012888888881881",
            expiry="3001",
            cvv2="",
            pin="",
            fill=b"",
            emv=None,
            key="vec-sale-3",
            response=terminal_pb2.AuthorizeResponse(
                transaction_id="7b6a5f4e3d2c1b0a998877665544332f",
                response_code=approved,
                auth_code="STI042",
                rrn="633214000103",
                stan=103,
                amount=_money(1500, "JPY"),
                scheme=common_pb2.CARD_SCHEME_VISA,
                masked_pan="401288******1881",
                acquirer_id="acq-alpha",
                message="approved in stand-in",
                stood_in=True,
                rekey_required=True,
            ),
        ),
    ]
    capture = terminal_pb2.CaptureRequest(
        idempotency_key="vec-capture-1",
        terminal_id=TERMINAL,
        transaction_id=SALE_TX,
        amount=_money(1000),
    )
    out.append(
        _operation_case(
            "capture-partial",
            4,
            "capture",
            "Capture",
            capture,
            terminal_pb2.CaptureResponse(
                response_code=approved, transaction=SALE, message="captured"
            ),
        )
    )
    voided = _transaction(
        transaction_id=VOID_TX,
        type=terminal_pb2.TRANSACTION_TYPE_AUTHORIZATION,
        state=terminal_pb2.TRANSACTION_STATE_VOIDED,
        stan=104,
        amount=_money(800),
        response_code=approved,
        auth_code="B7C8D9",
        rrn="633214000104",
    )
    out.append(
        _operation_case(
            "void",
            5,
            "void",
            "Void",
            terminal_pb2.VoidRequest(
                idempotency_key="vec-void-1", terminal_id=TERMINAL, transaction_id=VOID_TX
            ),
            terminal_pb2.VoidResponse(response_code=approved, transaction=voided, message="voided"),
        )
    )
    refund_tx = _transaction(
        transaction_id=REFUND_TX,
        type=terminal_pb2.TRANSACTION_TYPE_REFUND,
        state=terminal_pb2.TRANSACTION_STATE_APPROVED,
        stan=105,
        amount=_money(500),
        response_code=approved,
        rrn="633214000105",
        original_transaction_id=SALE_TX,
    )
    out.append(
        _operation_case(
            "refund-partial",
            6,
            "refund",
            "Refund",
            terminal_pb2.RefundRequest(
                idempotency_key="vec-refund-1",
                terminal_id=TERMINAL,
                original_transaction_id=SALE_TX,
                amount=_money(500),
                stan=105,
                local_time=LOCAL_TIME,
            ),
            terminal_pb2.RefundResponse(
                response_code=approved, transaction=refund_tx, message="refunded"
            ),
        )
    )
    out.append(
        _operation_case(
            "get-transaction-by-key",
            7,
            "get_transaction",
            "GetTransaction",
            terminal_pb2.GetTransactionRequest(terminal_id=TERMINAL, idempotency_key="vec-sale-1"),
            terminal_pb2.GetTransactionResponse(transaction=SALE),
        )
    )
    visa, mc = common_pb2.CARD_SCHEME_VISA, common_pb2.CARD_SCHEME_MASTERCARD
    out.append(
        _operation_case(
            "close-batch-out-of-balance",
            8,
            "close_batch",
            "CloseBatch",
            terminal_pb2.CloseBatchRequest(
                idempotency_key="vec-batch-1",
                terminal_id=TERMINAL,
                merchant_id=MERCHANT,
                terminal_totals=[
                    terminal_pb2.BatchTotal(
                        currency="EUR",
                        scheme=visa,
                        sale_count=1,
                        sale_minor=1000,
                        refund_count=1,
                        refund_minor=500,
                        void_count=1,
                    ),
                    terminal_pb2.BatchTotal(currency="EUR", scheme=mc),
                ],
            ),
            terminal_pb2.CloseBatchResponse(
                batch_number=3,
                switch_totals=[
                    terminal_pb2.BatchTotal(
                        currency="EUR",
                        scheme=visa,
                        sale_count=1,
                        sale_minor=1000,
                        refund_count=1,
                        refund_minor=500,
                        void_count=1,
                    )
                ],
                in_balance=False,
                reconciliation=terminal_pb2.BATCH_RECONCILIATION_OUT_OF_BALANCE,
                mismatches=[
                    terminal_pb2.BatchMismatch(
                        currency="EUR",
                        scheme=mc,
                        field="sale_count",
                        switch_value=0,
                        terminal_value=0,
                    )
                ],
                opened_at_ms=1795219200000,
                closed_at_ms=1795298400000,
                message="out of balance",
                response_code=approved,
            ),
        )
    )
    return out


def vectors() -> dict[str, Any]:
    ik = initial_key()
    transactions = []
    for counter in range(1, 9):
        transactions.append(
            {
                "counter": counter,
                "ksn": _hex(bytes(Ksn(IKID, counter))),
                "derivation_key": _hex(derivation_key(counter)),
                "keys": {name: _hex(working_key(counter, u)) for name, u in USAGES.items()},
            }
        )
    return {
        "schema": "payswitch-terminal-vectors/1",
        "about": (
            "Test vectors of the payswitch terminal link (docs/terminal-protocol.md), made by "
            "scripts/make_vectors.py. TEST KEYS ONLY: the BDK is the ANSI X9.24-3-2017 sample "
            "key, published with the standard; never load it into a real device."
        ),
        "layout": SCHEMA,
        "dukpt": {
            "standard": "ANSI X9.24-3-2017, AES-128 keys",
            "bdk": _hex(BDK),
            "initial_key_id": _hex(IKID),
            "initial_key": _hex(ik),
            "initial_key_kcv": _hex(kcv(ik)),
            "transactions": transactions,
        },
        "terminal_id": TERMINAL,
        "merchant_id": MERCHANT,
        "cases": cases(),
    }


def render() -> str:
    return json.dumps(vectors(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the committed file")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is stale: run make vectors and commit it", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
