"""``payswitch-hsm``: the key ceremony on the command line.

  payswitch-hsm init                 create the token (scripts/softhsm-init.sh; idempotent)
  payswitch-hsm keys [--topology F]  generate every missing key of the topology, print KCVs
  payswitch-hsm rotate [--key F]     new version of a versioned key (default switch/vault)
  payswitch-hsm retire LABEL         disable an old version (e.g. switch/vault/v1)
  payswitch-hsm list                 every key: label, type, size, KCV, status, capabilities

The token, module and PIN come from the environment (``hsm.config``). Output carries labels,
KCVs and flags only: KCVs are 3 bytes of a check computation, safe to print and compare between
parties; keys never leave the token. Exit status: 0 done, 1 HSM unavailable or refused, 2 usage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from hsm import keys
from hsm import labels as L
from hsm.config import INIT_SCRIPT, REPO_ROOT, HsmConfig
from hsm.errors import HsmError

DEFAULT_TOPOLOGY = REPO_ROOT / "topology" / "default.toml"
HEADER = f"    {'label':<40} {'type':<14} {'bits':>4} {'KCV':<10} {'status':<12} caps"


def _print(infos: list[keys.KeyInfo]) -> None:
    print(HEADER)
    for info in infos:
        print(info.line())


def _init(cfg: HsmConfig) -> int:
    proc = subprocess.run(  # noqa: S603 - fixed script path, no shell
        ["/bin/bash", str(INIT_SCRIPT)], env=cfg.script_env(), check=False
    )
    return 0 if proc.returncode == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="payswitch-hsm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("init", help="create the SoftHSM token (idempotent)")
    p_keys = sub.add_parser("keys", help="generate missing keys for the topology")
    p_keys.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    p_rot = sub.add_parser("rotate", help="new version of a versioned key")
    p_rot.add_argument("--key", default=f"{L.SWITCH}/{L.VAULT}", help="<owner>/<purpose>")
    p_ret = sub.add_parser("retire", help="disable an old key version")
    p_ret.add_argument("label")
    sub.add_parser("list", help="list keys with KCVs")
    args = parser.parse_args(argv)

    cfg = HsmConfig.from_env()
    if args.cmd == "init":
        return _init(cfg)

    from hsm.pool import HsmPool  # loads python-pkcs11 only for commands that need the token

    pool = HsmPool(cfg)
    try:
        if args.cmd == "keys":
            from payswitch.world.topology import load

            infos = pool.run_sync(keys.ensure, keys.plan(load(args.topology)))
            _print(infos)
            made = sum(1 for i in infos if i.created)
            print(f"{made} key(s) created, {len(infos) - made} already present")
        elif args.cmd == "rotate":
            owner, _, purpose = args.key.partition("/")
            _print([pool.run_sync(keys.rotate, owner, purpose)])
        elif args.cmd == "retire":
            _print([pool.run_sync(keys.retire, args.label)])
        elif args.cmd == "list":
            _print(pool.run_sync(keys.list_keys))
    except (HsmError, ValueError) as exc:
        print(f"payswitch-hsm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
