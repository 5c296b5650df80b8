"""The issuer's side of a chargeback: its books refuse what cannot be charged back, the
``payswitch-chargeback`` command (a real process on the books file) writes the outgoing file
once, and answering a representment moves the cardholder's money back or not."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from issuer.books import APPROVED, CB_RAISED, CB_REVERSED, Books
from issuer.chargebacks import answer_representment, raise_chargeback
from payswitch.world.topology import AccountConfig, CardConfig

CARD = CardConfig("5555555555554444", "2812", "A-1")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def books(tmp_path: Path):
    b = Books(tmp_path / "ISS2.db")
    b.seed([AccountConfig("A-1", "JPY", 100_000)])
    assert (
        b.authorize("000000000101", CARD, 5_000, "JPY", "2812", date(2027, 1, 15)).response_code
        == APPROVED
    )
    assert b.capture("000000000101", 5_000, "JPY") == APPROVED
    assert b.refund("000000000102", "000000000101", 1_000, "JPY") == APPROVED
    assert (
        b.authorize("000000000103", CARD, 700, "JPY", "2812", date(2027, 1, 15)).response_code
        == APPROVED
    )
    yield b
    b.close()


def test_only_what_is_left_of_a_posted_sale_can_be_charged_back(books, tmp_path) -> None:
    with pytest.raises(ValueError, match="rrn"):
        raise_chargeback(books, tmp_path, "ISS2", "000000000103", "4837")  # held, not posted
    with pytest.raises(ValueError, match="amount"):
        raise_chargeback(books, tmp_path, "ISS2", "000000000101", "4837", amount_minor=4_001)
    with pytest.raises(ValueError, match="reason_code"):
        raise_chargeback(books, tmp_path, "ISS2", "000000000101", "99.9")
    rec = raise_chargeback(books, tmp_path, "ISS2", "000000000101", "4837", raised_at=1.8e9)
    assert (rec["amount_minor"], rec["currency"]) == (4_000, "JPY")  # posted - refunded
    with pytest.raises(ValueError, match="amount"):
        raise_chargeback(books, tmp_path, "ISS2", "000000000101", "4853", amount_minor=1)
    assert books.account("A-1").balance == 100_000 - 5_000 + 1_000 + 4_000
    [path] = tmp_path.glob("chargebacks/*/*.jsonl")
    assert "4853" not in path.read_text()


def test_answers_move_the_cardholders_money(books, tmp_path) -> None:
    rec = raise_chargeback(books, tmp_path, "ISS2", "000000000101", "4853", amount_minor=2_000)
    balance = books.account("A-1").balance
    answer = answer_representment(books, tmp_path, "ISS2", rec["chargeback_id"], accept=True)
    assert answer["accepted"] and books.account("A-1").balance == balance - 2_000
    again = answer_representment(books, tmp_path, "ISS2", rec["chargeback_id"], accept=False)
    assert again["accepted"] and books.chargebacks()[0].state == CB_REVERSED  # answered once
    assert books.account("A-1").balance == balance - 2_000


def test_the_command_writes_the_file_once(books, tmp_path) -> None:
    books.close()
    args = [sys.executable, "-m", "issuer.chargebacks", "--books", str(tmp_path / "ISS2.db"),
            "--dir", str(tmp_path), "--issuer", "ISS2", "raise", "--rrn", "000000000101",
            "--reason", "4837", "--amount", "1500", "--id", "CB-1"]  # fmt: skip
    for _ in range(2):
        done = subprocess.run(
            args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["amount_minor"] == 1_500  # JPY: no decimals
    [path] = tmp_path.glob("chargebacks/ISS2/*.jsonl")
    [line] = path.read_text().splitlines()
    assert json.loads(line)["chargeback_id"] == "CB-1"
    reopened = Books(tmp_path / "ISS2.db")
    try:
        [cb] = reopened.chargebacks()
        assert (cb.chargeback_id, cb.state, cb.amount) == ("CB-1", CB_RAISED, 1_500)
    finally:
        reopened.close()
    held = [*args[:-8], "--rrn", "000000000103", "--reason", "4837"]
    bad = subprocess.run(held, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "rrn" in bad.stderr
