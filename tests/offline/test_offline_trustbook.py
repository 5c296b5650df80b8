"""The trust book: terminals get each issuer's current and previous key; settlement verifies
with every version and judges revocations by what the terminal knew at its sync; the file
round-trips."""

from __future__ import annotations

from pathlib import Path

from payswitch.offline.trustbook import TrustBook


def test_rotation_revocation_and_file(tmp_path: Path) -> None:
    book = TrustBook()
    book.publish_keys("bank-a", {1: b"\x04" + bytes(64)})
    book.publish_keys("bank-a", {1: b"\x04" + bytes(64), 2: b"\x04" + b"\x01" * 64})
    book.publish_keys("bank-a", {3: b"\x04" + b"\x02" * 64})
    assert sorted(book.for_terminals().keys) == [("bank-a", 2), ("bank-a", 3)]
    assert sorted(book.as_of(1).keys) == [("bank-a", 1), ("bank-a", 2), ("bank-a", 3)]
    before = book.version
    at = book.revoke_device("d" * 32)
    assert "d" * 32 not in book.as_of(before).revoked_devices
    assert "d" * 32 in book.as_of(at).revoked_devices
    assert "d" * 32 in book.for_terminals().revoked_devices
    book.revoke_key("bank-a", 2)
    book.save(tmp_path / "trust.json")
    again = TrustBook.load(tmp_path / "trust.json")
    assert again == book
    assert TrustBook.load(tmp_path / "missing.json") == TrustBook()
