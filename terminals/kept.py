"""A ``pos`` run's prepared sale, kept under its idempotency key so a later run can resend it.

Each ``pos`` run is a fresh device (key injection at start: new initial key ID, counter from
1), so a second ``pos pay --key K`` would build other bytes (a new KSN, STAN, ciphertext) and
the switch would refuse the key as reused with other content. A retry must resend the *same
bytes*: with ``--key``, ``pos pay`` keeps the request it built here before sending it, and a
later run with the same key and the same sale resends it (``Terminal.resend``).

What the file holds: the serialised ``AuthorizeRequest`` exactly as sent (terminal, merchant,
STAN, amount, KSN, the card data's *ciphertext*, the *enciphered* PIN block, chip data, the
request MAC) and the masked PAN (first six and last four digits, as printed on receipts).
Never the PAN, expiry, CVV2 or PIN in clear, and no key: the card data and PIN block are
under DUKPT keys of a device that no longer exists. A tampered file is refused by the switch
(the MAC covers every field). Files are 0600 in 0700 folders, created exclusively and never
through a symlink, and pruned after the switch's key retention (24 h).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from payswitch.v1 import terminal_pb2

RETENTION_S = 24 * 3600  # the switch keeps an idempotency key's answer 24 hours
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
_VERSION = 1


class KeptError(OSError):
    """A kept request that cannot be read or written (the message names the file only)."""


@dataclass(frozen=True, slots=True)
class KeptSale:
    request: terminal_pb2.AuthorizeRequest
    masked_pan: str


class KeptRequests:
    """The prepared sales of one state directory, by terminal and idempotency key."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "prepared"

    def path(self, terminal_id: str, key: str) -> Path:
        if not (_ID.fullmatch(terminal_id) and _ID.fullmatch(key)):
            raise KeptError(f"cannot keep a request for terminal {terminal_id!r}, key {key!r}")
        return self.root / terminal_id / f"{key}.json"

    def load(self, terminal_id: str, key: str) -> KeptSale | None:
        """The kept sale, or None (none kept, or older than the switch keeps its answer)."""
        path = self.path(terminal_id, key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeptError(f"{path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            if time.time() - os.fstat(f.fileno()).st_mtime > RETENTION_S:
                return None
            raw = f.read()
        try:
            doc = json.loads(raw)
            if doc.get("version") != _VERSION or doc.get("operation") != "pay":
                raise ValueError("unknown layout")
            request = terminal_pb2.AuthorizeRequest.FromString(base64.b64decode(doc["request"]))
            return KeptSale(request, str(doc.get("masked_pan", "")))
        except (ValueError, KeyError, TypeError, DecodeError):
            raise KeptError(f"{path}: not a kept request") from None

    def keep(
        self, terminal_id: str, key: str, request: terminal_pb2.AuthorizeRequest, masked_pan: str
    ) -> Path:
        """Write the request before it is sent; an existing file for the key is left alone."""
        path = self.path(terminal_id, key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prune(path.parent)
        doc = {
            "version": _VERSION,
            "operation": "pay",
            "masked_pan": masked_pan,
            "request": base64.b64encode(request.SerializeToString()).decode(),
        }
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        return path

    @staticmethod
    def _prune(folder: Path) -> None:
        cutoff = time.time() - RETENTION_S
        for old in folder.glob("*.json"):
            try:
                if old.lstat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass
