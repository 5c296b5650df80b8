"""Issuer-side HSM rates on SoftHSM: PIN translate, PIN verify, CVV verify, ARQC verify (+ARPC).

Why: these run once per authorization on the switch (translate) or the issuer (the rest); this
shows what one HSM thread sustains for each, next to the bare python-pkcs11 call rate, so the
cost of the executor hop and of our Python around the PKCS#11 calls is visible.

Three columns per operation: ``in-thread`` (a loop inside one HSM job: SoftHSM + our code),
``pool seq`` (``await pool.run`` one at a time: adds the executor hop) and ``pool c32`` (32
requests in flight on the single HSM thread, as under load).

    .venv/bin/python -m benchmarks.hsm_issuer_bench [--seconds 1.5] [--repeat 3]

Each figure is the best of ``--repeat`` runs: on a shared machine the best run is the one least
disturbed by other load.

Runs the key ceremony on a throwaway token in a temporary directory (nothing touches .softhsm),
prints a table and saves JSON to benchmarks/results/hsm_issuer_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent

PAN, PSN, EXPIRY = "4111111111111111", "00", "2812"
PIN = "2468"


def _ops_in_thread(pool: Any, op: Callable[[Any, int], object], seconds: float) -> float:
    """Call ``op(session, i)`` in a loop inside one HSM job for ``seconds``."""

    def job(session: Any) -> tuple[int, float]:
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            op(session, n)
            n += 1
        return n, elapsed

    n, elapsed = pool.run_sync(job)
    return n / elapsed


async def _ops_pool(pool: Any, op: Callable[[Any, int], object], seconds: float, inflight: int):
    """``await pool.run(op, i)`` from ``inflight`` concurrent tasks for ``seconds``."""
    counter = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            i = counter
            counter += 1
            await pool.run(op, i)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return counter / (time.perf_counter() - t0)


def _setup(pool: Any, n_blocks: int) -> dict[str, Any]:
    """Ceremony keys, a terminal injected through the HSM, and precomputed request data."""
    from hsm import cvv, emv, keys, pinblock
    from hsm.exchange import ceremony
    from hsm.kif import wrap_initial_key_for_terminal
    from hsm.pool import get_key
    from payswitch.world.topology import load
    from terminals import pinpad
    from terminals.secure_element import SecureElement

    ceremony(lambda _party: pool, keys.plan(load(REPO / "topology" / "default.toml")))

    se = SecureElement()
    modulus, exponent = se.transport_public_key()
    ikid = bytes.fromhex("00000001B0B0B0B0")
    se.load_initial_key(
        ikid, pool.run_sync(wrap_initial_key_for_terminal, ikid, modulus, exponent).wrapped
    )
    dukpt_blocks = []
    for _ in range(n_blocks):
        txn = se.begin()
        dukpt_blocks.append(
            (txn.ksn, pinpad.sim_encipher_pin_block(txn.pin_encrypt_block, PIN, PAN))
        )

    def _plain_block(zpk: Any) -> bytes:
        # a block under the issuer's inbound ZPK, built in the HSM with a fixed fill
        field = pinblock.pin_field(PIN, bytes(8))
        return pinblock._seal_field(zpk, field, pinblock.pan_field(PAN))

    def issuer_data(session: Any) -> dict[str, Any]:
        zpk_in = get_key(session, "bank-a/zpk.acq-alpha/v1")
        pvk = get_key(session, "bank-a/pvk/v1")
        imk = get_key(session, "bank-a/imk-ac/v1")
        cvk = cvv.load_cvk(session, "bank-a")
        card = emv.personalise_card(
            session, imk, PAN, PSN, label="card/bench/mk-ac/v1", token=False
        )
        arqcs = []
        try:
            for i in range(64):
                atc = (i + 1).to_bytes(2, "big")
                data = bytes(27) + atc + bytes.fromhex("06011203A0B800")
                arqcs.append((atc, data, emv.card_generate_arqc(session, card, atc, data)))
        finally:
            card.destroy()
        return {
            "pvv": pinblock.pvv_from_pin(session, pvk, PAN, PIN),
            "cvv": cvv.generate_cvv(session, cvk, PAN, EXPIRY, "000"),
            "arqcs": arqcs,
            "zpk_block": _plain_block(zpk_in),
            "acq_block": _plain_block(get_key(session, "switch/zpk.acq-alpha/v1")),
        }

    data = pool.run_sync(issuer_data)
    data["dukpt_blocks"] = dukpt_blocks
    return data


def _operations(data: dict[str, Any]) -> dict[str, Callable[[Any, int], object]]:
    from pkcs11 import Mechanism

    from hsm import cvv, emv, pinblock
    from hsm.dukpt import KeyUsage, transaction_key
    from hsm.pool import get_key

    blocks = data["dukpt_blocks"]

    def bare_aes_ecb(session: Any, i: int) -> object:
        return get_key(session, "switch/zpk.acq-alpha/v1").encrypt(
            bytes(16), mechanism=Mechanism.AES_ECB
        )

    def bare_random(session: Any, i: int) -> object:
        return session.generate_random(64)

    def translate_with_dukpt(session: Any, i: int) -> object:
        ksn, block = blocks[i % len(blocks)]
        with transaction_key(session, ksn) as tk:
            pek = tk.working_key(KeyUsage.PIN_ENCRYPTION)
            zpk = get_key(session, "switch/zpk.acq-alpha/v1")
            return pinblock.translate(session, pek, zpk, block, PAN)

    def translate_zpk_to_zpk(session: Any, i: int) -> object:
        inbound = get_key(session, "acq-alpha/zpk.switch/v1")
        outbound = get_key(session, "acq-alpha/zpk.bank-a/v1")
        return pinblock.translate(session, inbound, outbound, data["acq_block"], PAN)

    def pin_verify(session: Any, i: int) -> object:
        zpk = get_key(session, "bank-a/zpk.acq-alpha/v1")
        pvk = get_key(session, "bank-a/pvk/v1")
        ok = pinblock.verify_pin(session, zpk, pvk, data["zpk_block"], PAN, data["pvv"])
        assert ok
        return ok

    def cvv_verify(session: Any, i: int) -> object:
        ok = cvv.verify_cvv(
            session, cvv.load_cvk(session, "bank-a"), PAN, EXPIRY, "000", data["cvv"]
        )
        assert ok
        return ok

    def arqc_verify_arpc(session: Any, i: int) -> object:
        atc, txn, arqc = data["arqcs"][i % len(data["arqcs"])]
        imk = get_key(session, "bank-a/imk-ac/v1")
        check = emv.check_arqc(session, imk, PAN, PSN, atc, txn, arqc, b"00")
        assert check.valid
        return check

    return {
        "bare AES-ECB 16 B (python-pkcs11)": bare_aes_ecb,
        "bare C_GenerateRandom 8 B": bare_random,
        "PIN translate DUKPT->ZPK (incl. derive)": translate_with_dukpt,
        "PIN translate ZPK->ZPK": translate_zpk_to_zpk,
        "PIN verify (ZPK, CMAC PVV)": pin_verify,
        "CVV2 verify": cvv_verify,
        "ARQC verify + ARPC": arqc_verify_arpc,
    }


async def _run(pool: Any, seconds: float, repeat: int) -> dict[str, dict[str, float]]:
    data = _setup(pool, n_blocks=512)
    out: dict[str, dict[str, float]] = {}
    for name, op in _operations(data).items():
        row = {"in_thread_ops_s": 0.0, "pool_seq_ops_s": 0.0, "pool_c32_ops_s": 0.0}
        for _ in range(repeat):
            runs = (
                _ops_in_thread(pool, op, seconds),
                await _ops_pool(pool, op, seconds, 1),
                await _ops_pool(pool, op, seconds, 32),
            )
            for key, value in zip(row, runs, strict=True):
                row[key] = max(row[key], value)
        out[name] = {k: round(v, 1) for k, v in row.items()}
        print(
            f"{name:<42} {row['in_thread_ops_s']:>10,.0f} {row['pool_seq_ops_s']:>10,.0f}"
            f" {row['pool_c32_ops_s']:>10,.0f}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--json", type=Path, default=RESULTS / "hsm_issuer_bench.json")
    args = parser.parse_args()

    from hsm.testing import process_test_config

    with tempfile.TemporaryDirectory(prefix="payswitch-bench-hsm-") as tmp:
        cfg = process_test_config(Path(tmp))  # before pkcs11.lib() is first loaded
        from hsm.pool import HsmPool, reset_process_state

        pool = HsmPool(cfg, max_pending=64)
        print(f"{'ops/s (one HSM thread)':<42} {'in-thread':>10} {'pool seq':>10} {'pool c32':>10}")
        try:
            results = asyncio.run(_run(pool, args.seconds, args.repeat))
        finally:
            reset_process_state()

    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "hsm": "SoftHSM 2.6.1 via python-pkcs11 0.10.1, one PKCS#11 thread",
        "seconds_per_measurement": args.seconds,
        "best_of": args.repeat,
        "load_average_after": os.getloadavg(),
        "ops_per_second": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {args.json}")


if __name__ == "__main__":
    main()
