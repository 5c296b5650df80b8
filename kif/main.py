"""``payswitch-kif``: the key-injection facility, a process of its own with its own token.

  payswitch-kif register --terminal T [--ikid HEX] --operator NAME   assign a device to T
  payswitch-kif inject --terminal T --ikid HEX --operator NAME        wrap that device's IK
  payswitch-kif list                                                  the device register

With ``--switch-admin HOST:PORT`` (and ``--certs-dir`` when the switch runs TLS), a new
registration is also sent to the switch (``AdminService.RegisterDevice``, ``kif.switch_link``),
before any key is wrapped for the device.

``inject`` reads the device's RSA transport public key as JSON on stdin (``{"modulus": hex,
"exponent": hex}``) and writes ``{"ikid", "wrapped", "kcv"}`` as JSON on stdout: the initial key
wrapped under that public key (``hsm.kif``), never in clear. ``--register`` with ``inject``
assigns a new device to the terminal first (what the simulator's terminals do at each start).
It opens only the ``kif`` token, with the KIF's PIN (``--hsm-pin-file`` or
``<hsm home>/pins/kif.pin``); the switch has no part in it. Exit status: 0 done, 1 refused
(unregistered or foreign device, HSM unavailable), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hsm.config import KIF, HsmConfig, hsm_home
from hsm.errors import HsmError
from kif.register import DeviceRegister, RegisterError
from kif.switch_link import SwitchRefused, register_at_switch

BDK_ID = "00000001"  # the BDK ID in every initial key ID (the only BDK of the topology)


def _new_ikid() -> str:
    return (BDK_ID + os.urandom(4).hex()).upper()


def _register_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else hsm_home() / "kif"


def _register(args: argparse.Namespace, register: DeviceRegister, ikid: str) -> None:
    """At the switch when asked, then in the KIF's register: a device the switch refused is
    not registered here either, so no key is ever wrapped for it."""
    if register.lookup(ikid) is not None:
        raise RegisterError(f"device {ikid} is registered already")
    if args.switch_admin:
        register_at_switch(args.switch_admin, ikid, args.terminal, args.certs_dir)
    register.register(ikid, args.terminal, args.operator)
    if args.switch_admin:
        register.audit(
            "switch_registered", operator=args.operator, terminal_id=args.terminal, ikid=ikid
        )


def _inject(args: argparse.Namespace, register: DeviceRegister) -> dict[str, str]:
    from hsm.kif import wrap_initial_key_for_terminal
    from hsm.pool import HsmPool

    public = json.loads(sys.stdin.read())
    modulus, exponent = bytes.fromhex(public["modulus"]), bytes.fromhex(public["exponent"])
    ikid = args.ikid.upper() if args.ikid else _new_ikid()
    if args.register:
        _register(args, register, ikid)
    register.assigned(ikid, args.terminal)  # refuses an unregistered or foreign device
    pool = HsmPool(HsmConfig.for_party(KIF, pin_file=args.hsm_pin_file))
    out = pool.run_sync(wrap_initial_key_for_terminal, bytes.fromhex(ikid), modulus, exponent)
    register.audit(
        "inject", operator=args.operator, terminal_id=args.terminal, ikid=ikid, kcv=out.kcv
    )
    return {"ikid": ikid, "wrapped": out.wrapped.hex(), "kcv": out.kcv}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="payswitch-kif", description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=None, help="register directory (default: <hsm home>/kif)")
    p.add_argument("--hsm-pin-file", default=None, help="the kif token's PIN file")
    p.add_argument("--switch-admin", default=None, help="the switch's admin port, HOST:PORT")
    p.add_argument("--certs-dir", default=None, help="admin mTLS credentials (payswitch-certs)")
    sub = p.add_subparsers(dest="cmd", required=True)
    p_reg = sub.add_parser("register", help="assign a device to a terminal")
    p_inj = sub.add_parser("inject", help="wrap a registered device's initial key")
    for q in (p_reg, p_inj):
        q.add_argument("--terminal", required=True)
        q.add_argument("--ikid", default=None, help="initial key ID, 16 hex digits")
        q.add_argument("--operator", required=True, help="who does it (audit)")
    p_inj.add_argument("--register", action="store_true", help="assign a new device first")
    sub.add_parser("list", help="the device register")
    args = p.parse_args(argv)
    if args.cmd == "inject" and not (args.ikid or args.register):
        p.error("inject needs --ikid or --register")

    register = DeviceRegister(_register_dir(args))
    try:
        if args.cmd == "register":
            ikid = (args.ikid or _new_ikid()).upper()
            _register(args, register, ikid)
            print(json.dumps({"ikid": ikid, "terminal_id": args.terminal}))
        elif args.cmd == "inject":
            print(json.dumps(_inject(args, register)))
        else:
            for reg in register.all():
                print(f"{reg.ikid}  {reg.terminal_id:<16} {reg.operator}")
    except (RegisterError, SwitchRefused, HsmError, ValueError, KeyError) as exc:
        print(f"payswitch-kif: {exc}", file=sys.stderr)
        return 1
    finally:
        register.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
