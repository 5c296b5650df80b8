"""``pos`` offline commands: a payer wallet (the device) and the offline sale.

    pos wallet-grant NAME 100.00 EUR --issuer bank-a --account A-1001 [--per-tx 50.00]
    pos offline-pay 12.50 EUR --wallet NAME        # no switch needed
    pos sync                                       # later, online (terminals.offline_sync)

The wallet stands in for the cardholder's phone or card: its key is made in a PKCS#11 token of
its own (``wallets`` in the HSM home, created on first use), its state in
``<state dir>/wallet-NAME.db``; ``wallet-grant`` asks the issuer, through the switch, for an
allowance (``GrantOfflineAllowance``). ``offline-pay`` is the tap: the wallet signs, the
terminal checks and journals with an fsync (``<state dir>/terminal-<id>.offline.db``), then
prints the approval. Blocking work (PKCS#11, SQLite) runs in worker threads.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from payswitch import money
from payswitch.offline.formats import Allowance, Signed
from payswitch.v1 import offline_pb2, offline_pb2_grpc
from terminals.offline import OfflineDecline, OfflineTerminal
from terminals.offline_device import DeviceRefusal, PayerDevice, TokenSigner

WALLET_PARTY = "wallets"  # the wallets' own token in the HSM home


class OfflineUsage(ValueError):
    pass


def _signer(name: str) -> TokenSigner:
    from hsm.config import HsmConfig, hsm_home
    from hsm.pool import HsmPool
    from hsm.provision import ensure_tokens

    ensure_tokens(hsm_home(), [WALLET_PARTY])  # before the PKCS#11 library loads
    return TokenSigner(HsmPool(HsmConfig.for_party(WALLET_PARTY)), f"wallet-{name}")


def wallet_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"wallet-{name}.db"


def journal_path(state_dir: Path, terminal_id: str) -> Path:
    return state_dir / f"terminal-{terminal_id}.offline.db"


async def wallet_grant(
    stub: offline_pb2_grpc.OfflineServiceStub,
    state_dir: Path,
    name: str,
    cap: money.Amount,
    per_tx: money.Amount,
    *,
    issuer: str,
    account: str,
    count: int = 10,
) -> str:
    await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
    signer = await asyncio.to_thread(_signer, name)
    answer = await stub.GrantOfflineAllowance(
        offline_pb2.GrantOfflineAllowanceRequest(
            issuer=issuer,
            account_id=account,
            card_token=f"wallet-{name}",
            device_public_key=await asyncio.to_thread(signer.public_key),
            currency=cap.currency,
            cumulative_cap=cap.minor_units,
            per_tx_cap=per_tx.minor_units,
            count_cap=count,
        )
    )
    signed = Signed(answer.allowance, answer.allowance_signature)
    wallet = await asyncio.to_thread(PayerDevice, wallet_path(state_dir, name), signer)
    await asyncio.to_thread(wallet.load, signed)
    a = Allowance.parse(signed.body)
    until = time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.expires_at))
    return (
        f"wallet {name}: allowance {a.allowance_id} of "
        f"{money.format_major(a.cumulative_cap, a.currency)} {a.currency} from {a.issuer} "
        f"(key v{a.key_version}), until {until} UTC"
    )


def offline_pay(
    state_dir: Path, terminal_id: str, merchant_id: str, wallet: str, amount: money.Amount
) -> str:
    """The tap, offline: the wallet signs, the terminal approves (journalled, fsynced)."""
    path = wallet_path(state_dir, wallet)
    if not path.exists():
        raise OfflineUsage(f"no wallet {wallet!r}: run pos wallet-grant first")
    device = PayerDevice(path, _signer(wallet))
    terminal = OfflineTerminal(journal_path(state_dir, terminal_id), terminal_id, merchant_id)
    try:
        now = int(time.time())
        spend = device.spend(amount.minor_units, amount.currency, merchant_id, terminal_id, now)
        ok = terminal.approve(device.allowance(), spend, now)
    except DeviceRefusal as exc:
        return f"DECLINED OFFLINE by the wallet: {exc.reason}"
    except OfflineDecline as exc:
        return f"DECLINED OFFLINE by the terminal: {exc.reason}"
    finally:
        terminal.close()
        device.close()
    left = device_balance(path, wallet)
    return (
        f"APPROVED OFFLINE {money.format_major(ok.amount, ok.currency)} {ok.currency} "
        f"(journal #{ok.seq}, counter {ok.counter}; wallet left {left}); "
        "settles at the next pos sync"
    )


def device_balance(path: Path, wallet: str) -> str:
    device = PayerDevice(path, _signer(wallet))
    try:
        b = device.balance()
        return f"{money.format_major(b.remaining, b.currency)} {b.currency}"
    finally:
        device.close()
