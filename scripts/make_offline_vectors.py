"""Write docs/vectors/offline-v1.json: offline allowance and spend test vectors.

Fixed private scalars and RFC 6979 deterministic ECDSA, so the file is the same on every run
(tests/offline/test_offline_formats.py checks it verifies). A terminal in any language checks
its canonical bytes, SHA-256 and signature verification against it.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from payswitch.offline import ecdsa
from payswitch.offline.formats import Allowance, Spend

OUT = Path(__file__).resolve().parents[1] / "docs" / "vectors" / "offline-v1.json"
ISSUER_SCALAR = 0x1B2C3D4E5F60718293A4B5C6D7E8F90112233445566778899AABBCCDDEEFF001
DEVICE_SCALAR = 0x2C3D4E5F60718293A4B5C6D7E8F90112233445566778899AABBCCDDEEFF00112


def _key(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> bytes:
    der = key.sign(body, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return ecdsa.raw_signature(der)


def _vector(kind: str, body: bytes, pub: bytes, sig: bytes, valid: bool) -> dict[str, object]:
    return {
        "kind": kind,
        "canonical": body.decode("ascii"),
        "canonical_hex": body.hex(),
        "sha256": ecdsa.sha256(body).hex(),
        "public_key": pub.hex(),
        "signature": sig.hex(),
        "valid": valid,
    }


def build() -> dict[str, object]:
    issuer, device = _key(ISSUER_SCALAR), _key(DEVICE_SCALAR)
    ipub = ecdsa.SoftwareKey(issuer).public_key()
    dpub = ecdsa.SoftwareKey(device).public_key()
    a = Allowance(
        "bank-a", 1, "al-0001", "411111-807-1111", dpub, 5000, 20000, 10, "EUR",
        1_800_000_000, 1_800_086_400,
    )  # fmt: skip
    abody = a.canonical()
    s1 = Spend("al-0001", 1, 1250, "EUR", "merchant-1", "term-1", 1_800_000_100, a.genesis())
    s2 = Spend("al-0001", 2, 990, "EUR", "merchant-1", "term-2", 1_800_000_200, s1.digest())
    sig1 = _sign(device, s1.canonical())
    tampered = s1.canonical().replace(b"|1250|", b"|9250|")
    return {
        "description": "payswitch offline payments v1 (docs/terminal-protocol.md, Offline "
        "payments): canonical bytes, SHA-256, ECDSA P-256 r||s signatures, deterministic "
        "(RFC 6979) so the file is reproducible; 'valid' says whether the signature verifies",
        "issuer_public_key": ipub.hex(),
        "device_public_key": dpub.hex(),
        "allowances": [_vector("allowance", abody, ipub, _sign(issuer, abody), True)],
        "spends": [
            _vector("spend", s1.canonical(), dpub, sig1, True),
            _vector("spend", s2.canonical(), dpub, _sign(device, s2.canonical()), True),
            _vector("spend-tampered", tampered, dpub, sig1, False),
        ],
        "chain": {
            "genesis_prev_hash": a.genesis().hex(),
            "spend1_hash": s1.digest().hex(),
            "spend2_prev_hash": s2.prev_hash.hex(),
        },
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
