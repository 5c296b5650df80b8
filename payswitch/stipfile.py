"""The issuer's stand-in file: what an issuer publishes to the network for stand-in processing.

Card networks' stand-in gets from each issuer its keys (shared once, in the key ceremony) and a
file of its cards kept fresh: here one file per issuer, ``<files_dir>/<issuer>.stip``, written
by the issuer at start and every ``[standin] publish_interval_s``, read by the switch. Each
card is named by a keyed digest of its PAN (``hsm.stip.card_digest``, never the PAN or a bare
hash of it) and carries its status (``active``, ``blocked``, ``lost``: the negative file) and
its PIN verification value when it has a PIN (``hsm.pinblock``: a MAC under the PVK, useless
without it; never the PIN), and its chip's ATC history as the issuer's books hold it (per PAN
sequence number: the highest counter seen and the window below it, ``payswitch.atc``), so that
stand-in refuses a cryptogram the issuer has already seen or one rolled back. Sensitive all
the same: the file is owner-only (0600, the processes' umask) and never logged.

Layout, two lines: the body (compact JSON, sorted keys) and the hex HMAC-SHA256 of exactly
those bytes under the issuer's stand-in key (``hsm.stip.file_mac``); the switch refuses a file
whose MAC does not verify under its copy of that key. ``published_at`` (Unix seconds) lets the
switch refuse a stale file (``[standin] max_age_s``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from payswitch.atc import MAX_WINDOW, AtcState

FORMAT = 1
STATUSES = frozenset({"active", "blocked", "lost"})


class StipFileError(ValueError):
    """A stand-in file that cannot be read as one (the message names no card data)."""


@dataclass(frozen=True, slots=True)
class StipCard:
    status: str
    pvv: bytes = field(default=b"", repr=False)
    atcs: dict[str, AtcState] = field(default_factory=dict)  # PAN sequence number -> history


@dataclass(frozen=True, slots=True)
class StipFile:
    issuer: str
    published_at: float
    cards: dict[str, StipCard] = field(repr=False)  # card digest (hex) -> card
    atc_window: int = 32

    def body(self) -> bytes:
        doc = {
            "format": FORMAT,
            "issuer": self.issuer,
            "published_at": self.published_at,
            "atc_window": self.atc_window,
            "cards": [
                {
                    "card": d,
                    "status": c.status,
                    "pvv": c.pvv.hex(),
                    "atc": {psn: [a.highest, a.seen] for psn, a in sorted(c.atcs.items())},
                }
                for d, c in sorted(self.cards.items())
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def path_of(files_dir: str | Path, issuer_id: str) -> Path:
    return Path(files_dir) / f"{issuer_id}.stip"


def write(files_dir: str | Path, body: bytes, mac: bytes, issuer_id: str) -> Path:
    """Atomically replace the issuer's file (a reader sees the old or the new, never half)."""
    directory = Path(files_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = path_of(directory, issuer_id)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{issuer_id}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body + b"\n" + mac.hex().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def split(raw: bytes) -> tuple[bytes, bytes]:
    """(body, mac) of a file's bytes; StipFileError when it is not two lines."""
    lines = raw.split(b"\n")
    if len(lines) != 3 or lines[2] != b"":
        raise StipFileError("not a stand-in file (two lines expected)")
    try:
        return lines[0], bytes.fromhex(lines[1].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise StipFileError("stand-in file: the MAC line is not hex") from None


def parse(body: bytes, issuer_id: str) -> StipFile:
    """A body whose MAC verified; StipFileError when malformed or for another issuer."""
    try:
        doc = json.loads(body)
        if doc["format"] != FORMAT or doc["issuer"] != issuer_id:
            raise StipFileError("stand-in file: another format or issuer")
        cards: dict[str, StipCard] = {}
        for c in doc["cards"]:
            if c["status"] not in STATUSES:
                raise StipFileError("stand-in file: unknown card status")
            atcs = {str(psn): AtcState(int(h), int(seen)) for psn, (h, seen) in c["atc"].items()}
            cards[str(c["card"])] = StipCard(c["status"], bytes.fromhex(c["pvv"]), atcs)
        window = int(doc["atc_window"])
        if not 1 <= window <= MAX_WINDOW:
            raise StipFileError("stand-in file: atc_window out of range")
        return StipFile(issuer_id, float(doc["published_at"]), cards, window)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, StipFileError):
            raise
        raise StipFileError("stand-in file: malformed body") from None
