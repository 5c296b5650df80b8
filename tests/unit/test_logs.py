"""The log masking safety net: PAN-like digit runs never reach stdout in clear, while the hex
identifiers an operator needs (KSNs, transaction ids, device IDs under their field name) do."""

import json
import subprocess
import sys

from payswitch.logs import _mask_event, _mask_text

CODE = """
from payswitch import logs
logs.configure("test-node")
log = logs.get("x")
log.info("oops", pan="4111111111111111", note="card 5555555555554444 seen", n=378282246310005)
log.info("fine", rrn="000000001234", stan=123456)
"""


def test_pan_like_values_are_masked_in_json_lines():
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["pan"] == "411111******1111"
    assert "5555555555554444" not in out and "378282246310005" not in out
    assert "4111111111111111" not in out
    assert lines[1]["rrn"] == "000000001234"  # 12 digits is not a PAN
    assert lines[0]["node"] == "test-node"


# --- hex identifiers survive, PANs do not ------------------------------------------------------

KSN = "000000012940123B00000004"  # 24 hex: its first 15 characters are digits
TX = "1234567890123456789abcdef0123456"  # 32 hex: a transaction id starting with 19 digits
DEVICE = "0000000112345678"  # a device's initial key ID: 16 digits, the length of a PAN


def test_ksns_and_transaction_ids_survive_whole():
    assert _mask_text(f"request ksn={KSN} tx {TX}: MAC does not verify") == (
        f"request ksn={KSN} tx {TX}: MAC does not verify"
    )
    event = _mask_event(None, "info", {"ksn": KSN, "transaction_id": TX, "device": DEVICE})
    assert event == {"ksn": KSN, "transaction_id": TX, "device": DEVICE}
    assert _mask_text(KSN.lower()) == KSN.lower()


def test_pan_like_values_are_still_masked_next_to_identifiers():
    assert _mask_text(f"card 4111111111111111 ksn {KSN}") == f"card 411111******1111 ksn {KSN}"
    assert _mask_text("pan4111111111111111") == "pan411111******1111"  # glued to letters
    assert _mask_text("4111111111111112") == "411111******1112"  # not Luhn-valid: still masked
    # Not an identifier's shape: 23 or 25 hex characters, or one hex character too many.
    for text in (KSN[1:], KSN + "0", TX + "a"):
        assert _mask_text(text) != text, text
    # A device ID only survives under its field name; elsewhere 16 digits are a PAN's shape.
    assert _mask_event(None, "info", {"note": DEVICE})["note"] == "000000******5678"
    assert _mask_event(None, "info", {"ksn": "4111111111111111"})["ksn"] == "411111******1111"
    assert _mask_event(None, "info", {"device": "4111111111111111x"})["device"] == (
        "411111******1111x"
    )
