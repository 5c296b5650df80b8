"""The world the benchmark runs against: the default topology with a fleet of terminals, large
balances, free loopback ports, a throwaway SoftHSM token with its keys, and the stack started.

Why a generated topology: STANs must be unique per (terminal, local date), so a long run needs
many terminal ids; approvals place holds, so balances must not run out mid-run (which would
turn approvals into 51s and change the workload). The decline cards keep their small balance
and limits so that each decline still comes from the party that gives it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from benchmarks.traffic import DECLINES, inject, terminal_ids
from payswitch.world.ports import with_free_ports, write_topology
from payswitch.world.tomlw import dumps
from stack.launcher import Stack

RISK_RULES = Path(__file__).resolve().parents[1] / "topology" / "risk" / "rules-v1.toml"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TOPOLOGY = REPO_ROOT / "topology" / "default.toml"
BIG_BALANCE = 10**13  # minor units: enough for any bounded run
GHZ_TERMINAL = "T-GHZ"  # ghz gets a terminal of its own: its STANs cannot clash with ours


def bench_topology(terminals: int, *, latency: bool = True) -> dict[str, Any]:
    """The default world with ``terminals`` extra terminals (spread over the merchants),
    one for ghz, and every account large except those the decline cards rely on."""
    doc = tomllib.loads(DEFAULT_TOPOLOGY.read_text())
    decline_pans = {c.pan for c in DECLINES if c.expect == "51"}
    keep_small = {
        card["account"]
        for issuer in doc.get("issuers", [])
        for card in issuer.get("cards", [])
        if card["pan"] in decline_pans
    }
    for issuer in doc.get("issuers", []):
        for account in issuer.get("accounts", []):
            if account["id"] not in keep_small:
                account["balance"] = BIG_BALANCE
                if "credit_limit" in account:
                    account["credit_limit"] = BIG_BALANCE
    merchants = [m["id"] for m in doc["merchants"]]
    fleet = [
        {"id": t, "merchant": merchants[i % len(merchants)]}
        for i, t in enumerate(terminal_ids(terminals))
    ]
    doc["terminals"] = [
        *doc.get("terminals", []),
        *fleet,
        {"id": GHZ_TERMINAL, "merchant": merchants[0]},
    ]
    # The load suite measures the switch on its plaintext terminal port (as its echo ceiling
    # and ghz --insecure do); mTLS's per-request cost is measured on its own (README).
    doc.setdefault("switch", {})["tls"] = False
    # ... and on plaintext hops between the switch and the network nodes, so that its figures
    # compare with earlier runs; every process warns that it runs in plaintext.
    doc["network"] = {"tls": False}
    # ghz sends every request as one terminal; the per-terminal rate limit (a till does not send
    # 50 authorizations a second) would answer it RESOURCE_EXHAUSTED: lift it for the load suite.
    doc["switch"]["terminal_rate_per_s"] = 1_000_000
    doc["switch"]["terminal_burst"] = 1_000_000
    if not latency:
        for section in ("acquirers", "schemes", "issuers"):
            for node in doc.get(section, []):
                node.pop("latency", None)
    return doc


def fleet_terminals(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(terminal id, merchant id) of the generated fleet (not the defaults, not ghz's)."""
    return [(t["id"], t["merchant"]) for t in doc["terminals"] if t["id"].startswith("T-B")]


def merchant_of(doc: dict[str, Any], terminal: str) -> str:
    return next(str(t["merchant"]) for t in doc["terminals"] if t["id"] == terminal)


def pin_cards(doc: dict[str, Any]) -> dict[str, str]:
    """PAN -> PIN of the cards the topology gives a PIN (the simulated cardholder's)."""
    return {
        str(card["pan"]): str(card["pin"])
        for issuer in doc.get("issuers", [])
        for card in issuer.get("cards", [])
        if "pin" in card
    }


def secure_elements(terminals: list[str]) -> dict[str, Any]:
    """Key injection for every terminal from the KIF's copy of the BDK in its throwaway token.
    Loads python-pkcs11 in this process: call it after the tokens and their keys exist."""
    from hsm import kif
    from hsm.pool import HsmPool
    from hsm.testing import party_config

    pool = HsmPool(party_config("kif"))

    def wrap(ikid: bytes, modulus: bytes, exponent: bytes) -> bytes:
        return pool.run_sync(kif.wrap_initial_key_for_terminal, ikid, modulus, exponent).wrapped

    return inject(terminals, wrap)


def make_token(home: Path) -> None:
    """A throwaway SoftHSM token, exported to this process's environment (children inherit)."""
    from hsm.testing import process_test_config

    process_test_config(home)


def make_keys(topology_path: Path) -> None:
    """The switch's tokenization and fingerprint keys, generated in the throwaway token."""
    subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        [sys.executable, "-m", "payswitch.ceremony", "keys", "--topology", str(topology_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def store_for(run_dir: Path, synchronous: str) -> str:
    return f"sqlite:///{run_dir / 'switch.db'}?synchronous={synchronous}"


def observe_only_rules(path: Path) -> Path:
    """The shipped risk rules with nothing able to act: every rule and limit is evaluated as in
    production (a limit as a rule), but there are no thresholds or lists, so every decision
    lets the request through. The stage costs what it costs; the bench's workload (the same
    cards paid thousands of times a second) stays the one it measures."""
    doc = tomllib.loads(RISK_RULES.read_text())
    doc["version"] = "bench-observe-only"
    doc["thresholds"] = {}
    doc.pop("lists", None)
    limits = doc.pop("limits", [])
    doc["rules"] = [
        *doc.get("rules", []),
        *({"id": x["id"], "when": x["when"], "score": 1} for x in limits),
    ]
    path.write_text(dumps(doc))
    return path


def start_stack(
    run_dir: Path,
    *,
    terminals: int,
    latency: bool,
    synchronous: str,
    risk: bool = True,
    store: str | None = None,
    switches: int = 1,
) -> tuple[Stack, dict[str, Any]]:
    """Write the bench topology on free ports, make keys, start every process; the caller stops
    the returned stack (also on failure after this returns). ``risk``: the risk stage on, with
    the shipped rules observe-only (``observe_only_rules``); its fallback lets requests
    through (and counts them) when the store is slower than the stage's slice. ``store``: a
    store URL (``benchmarks.stores``; SQLite in ``run_dir`` by default), ``switches``: switch
    processes on it (more than one needs Cassandra)."""
    doc = bench_topology(terminals, latency=latency)
    if risk:
        rules = observe_only_rules(run_dir / "risk-rules.toml")
        doc["risk"] = {
            "enabled": True,
            "rules": str(rules),
            "slice_ms": 100,
            "fallback_floor": {"EUR": 10**12, "USD": 10**12, "JPY": 10**12, "KWD": 10**12},
            "small": {"EUR": 200, "USD": 200, "JPY": 300},
        }
    doc = with_free_ports(doc)
    path = run_dir / "topology.toml"
    write_topology(doc, path)
    make_keys(path)
    stack = Stack(
        path,
        run_dir,
        store=store or store_for(run_dir, synchronous),
        switches=switches,
        # A fresh Cassandra keyspace is created and migrated by the first switch: DDL on a
        # three-node cluster takes minutes on a busy 2-core machine.
        ready_timeout=60.0 if store is None or store.startswith("sqlite") else 300.0,
    )
    stack.start()
    return stack, doc
