"""``payswitch-offline``: the issuers' offline keys and the trust file terminals get at sync.

    payswitch-offline keys   [--topology T] [--trust FILE]   # each issuer's key (v1 if none)
    payswitch-offline rotate ISSUER [--trust FILE]           # a new version, published
    payswitch-offline revoke-key ISSUER VERSION [--trust FILE]
    payswitch-offline revoke-device DEVICE_ID [--trust FILE]
    payswitch-offline show [--trust FILE]

Keys are generated in each issuer's own token (``hsm/offline.py``); only public keys are
written out. The trust file (default ``.run/offline-trust.json``) is the switch's
``TrustBook``: every version ever published (settlement verifies old approvals), which
version is current, and each revocation with the trust version that first carried it. The
switch reads it at start and answers every sync with it; terminals accept each issuer's
current and previous version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsm.config import REPO_ROOT, HsmConfig
from hsm.pool import HsmPool
from payswitch.offline.checks import device_id as _device_id
from payswitch.offline.trustbook import TrustBook

DEFAULT_TRUST = REPO_ROOT / ".run" / "offline-trust.json"
DEFAULT_TOPOLOGY = REPO_ROOT / "topology" / "default.toml"


def _publish(book: TrustBook, issuer: str, pool: HsmPool, *, rotate: bool) -> int:
    from hsm import offline

    version = pool.run_sync(offline.rotate if rotate else offline.ensure, issuer)
    book.publish_keys(issuer, pool.run_sync(offline.public_keys, issuer))
    return int(version)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="payswitch-offline", description=__doc__.split("\n")[0])
    p.add_argument("--trust", type=Path, default=DEFAULT_TRUST)
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keys", help="each issuer's offline key (made when missing), published")
    k.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    r = sub.add_parser("rotate", help="a new key version for one issuer")
    r.add_argument("issuer")
    rk = sub.add_parser("revoke-key", help="revoke one issuer key version")
    rk.add_argument("issuer")
    rk.add_argument("version", type=int)
    rd = sub.add_parser("revoke-device", help="revoke a device (its id, or its public key hex)")
    rd.add_argument("device")
    sub.add_parser("show", help="print the trust file")
    args = p.parse_args(argv)
    book = TrustBook.load(args.trust)
    if args.command == "keys":
        from payswitch.world.topology import load

        for issuer in load(args.topology).issuers:
            v = _publish(book, issuer.id, HsmPool(HsmConfig.for_party(issuer.id)), rotate=False)
            print(f"{issuer.id}: offline key v{v}")
    elif args.command == "rotate":
        v = _publish(book, args.issuer, HsmPool(HsmConfig.for_party(args.issuer)), rotate=True)
        print(f"{args.issuer}: offline key v{v} (terminals accept v{v} and v{v - 1})")
    elif args.command == "revoke-key":
        if (args.issuer, args.version) not in book.keys:
            print(f"payswitch-offline: no key {args.issuer} v{args.version}", file=sys.stderr)
            return 2
        at = book.revoke_key(args.issuer, args.version)
        print(f"revoked {args.issuer} v{args.version} at trust version {at}")
    elif args.command == "revoke-device":
        device = args.device
        if len(device) == 130:  # a public key in hex
            device = _device_id(bytes.fromhex(device))
        if len(device) != 32:
            print("payswitch-offline: a device id is 32 hex digits", file=sys.stderr)
            return 2
        print(f"revoked device {device} at trust version {book.revoke_device(device)}")
    if args.command != "show":
        book.save(args.trust)
    print(
        book.to_json()
        if args.command == "show"
        else f"trust file {args.trust} (version {book.version})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
