"""``payswitch-hsm``: the key ceremony on the command line, run by the key custodian.

  payswitch-hsm init [--topology F]     one token per party, random PINs in owner-only files
  payswitch-hsm keys [--topology F]     every missing key of the topology; shared keys exchanged
                                        as key blocks under KEKs agreed with RSA-OAEP; print KCVs
  payswitch-hsm list [--party P ...]    every key of each party's token: label, type, KCV, flags
  payswitch-hsm rotate [--key F]        new version of a versioned key (default switch/vault)
  payswitch-hsm retire LABEL            disable an old version (e.g. switch/vault/v1)

Each party's token is opened with that party's PIN (``<home>/pins/<party>.pin``, ``hsm.config``);
the custodian is the one who may open them all. Output carries labels, KCVs and flags only:
KCVs are 3 bytes of a check computation, safe to print and compare between parties; keys never
leave a token except wrapped. Exit status: 0 done, 1 HSM unavailable or refused, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsm import keys
from hsm import labels as L
from hsm.config import REPO_ROOT, HsmConfig, hsm_home
from hsm.errors import HsmError
from hsm.pool import HsmPool

DEFAULT_TOPOLOGY = REPO_ROOT / "topology" / "default.toml"
HEADER = f"    {'label':<40} {'type':<14} {'bits':>4} {'KCV':<10} {'status':<12} caps"


def _print(infos: list[keys.KeyInfo]) -> None:
    print(HEADER)
    for info in infos:
        print(info.line())


def _parties(topology: Path) -> list[str]:
    from payswitch.world.topology import load

    return keys.parties(load(topology))


def _init(topology: Path) -> None:
    from hsm.provision import ensure_tokens

    for state in ensure_tokens(hsm_home(), _parties(topology)):
        print(state.line())


class _Pools:
    """One pool per party, each logged in to that party's token with that party's PIN."""

    def __init__(self) -> None:
        self._pools: dict[str, HsmPool] = {}

    def __call__(self, party: str) -> HsmPool:
        if party not in self._pools:
            self._pools[party] = HsmPool(HsmConfig.for_party(party))
        return self._pools[party]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="payswitch-hsm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_init = sub.add_parser("init", help="one token per party of the topology (idempotent)")
    p_init.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    p_keys = sub.add_parser("keys", help="generate and exchange missing keys for the topology")
    p_keys.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    p_rot = sub.add_parser("rotate", help="new version of a versioned key")
    p_rot.add_argument("--key", default=f"{L.SWITCH}/{L.VAULT}", help="<owner>/<purpose>")
    p_ret = sub.add_parser("retire", help="disable an old key version")
    p_ret.add_argument("label")
    p_list = sub.add_parser("list", help="list keys with KCVs, per party")
    p_list.add_argument("--party", action="append", help="party id (default: every party)")
    p_list.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    args = parser.parse_args(argv)

    try:
        if args.cmd in ("init", "keys"):
            _init(args.topology)  # tokens first: a process lists tokens when it loads PKCS#11
        if args.cmd == "init":
            return 0
        pools = _Pools()
        if args.cmd == "keys":
            from hsm.exchange import ceremony
            from payswitch.world.topology import load

            infos = ceremony(pools, keys.plan(load(args.topology)))
            _print(infos)
            made = sum(1 for i in infos if i.created)
            print(f"{made} key(s) created, {len(infos) - made} already present")
        elif args.cmd == "rotate":
            owner, _, purpose = args.key.partition("/")
            _print([pools(owner).run_sync(keys.rotate, owner, purpose)])
        elif args.cmd == "retire":
            owner = L.parse(args.label).owner
            _print([pools(owner).run_sync(keys.retire, args.label)])
        elif args.cmd == "list":
            for party in args.party or _parties(args.topology):
                print(f"token {party}:")
                _print(pools(party).run_sync(keys.list_keys))
    except (HsmError, ValueError, OSError) as exc:
        print(f"payswitch-hsm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
