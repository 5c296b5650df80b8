"""``python -m switch.cli.saf``: the earlier store-side SAF tool, kept for scripts. It only
delegates to the one operator tool, ``payswitch-admin --store URL --json saf ...``
(``switch.cli.admin``): same store access, same JSON lines, same exit statuses.

    python -m switch.cli.saf --store sqlite:///.run/switch.db list [--dead] [--limit N]
    python -m switch.cli.saf --store sqlite:///.run/switch.db replay REVERSAL:<tx id>
"""

from __future__ import annotations

import argparse
import sys

from payswitch.process import private_files
from switch.cli import admin as admin_cli


def translate(argv: list[str]) -> list[str]:
    """This tool's arguments as ``payswitch-admin``'s."""
    p = argparse.ArgumentParser(prog="python -m switch.cli.saf", description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="the switch's store URL")
    known, rest = p.parse_known_args(argv)
    return ["--store", known.store, "--json", "saf", *rest]


def main(argv: list[str] | None = None) -> None:
    private_files()
    admin_cli.main(translate(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
