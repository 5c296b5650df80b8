"""The log masking safety net: PAN-like digit runs never reach stdout in clear."""

import json
import subprocess
import sys

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
