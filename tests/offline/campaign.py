"""Seeded offline campaign (issue 13): each seed a random mix of honest and dishonest offline
spends across terminals, uploaded in random order, cut and resumed, repeated, then settled on
a real store; every dishonest act must be caught, no honest spend flagged, every honest spend
paid exactly once, the issuer's hold never over-used.

    .venv/bin/python -m tests.offline.campaign --seeds 200 [--store sqlite|cassandra] [--first 1]

(``make offline-campaign SEEDS=200``; CI runs a short slice in test_offline_campaign.py.)

Acts, per seed: honest spends at random terminals; a **clone** (the device's wallet and key
copied, both then spending at different terminals: same counters); a **jumping clone** (a copy
that skips counters to dodge the counter check: its chain breaks); a **replay** (a dishonest
terminal journals another terminal's spend); a **tampered** entry (amount altered in the
journal file); a **forged** spend (right shape, another key). Issuer keys rotate mid-seed for
some seeds (terminals hold the current and previous version).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from issuer.offline_books import OfflineBooks
from payswitch.offline import ecdsa
from payswitch.offline.formats import Allowance, Spend, sign_allowance
from switch.backoffice.offline.settle import OfflineSettlement, Payment, Upload
from switch.backoffice.offline.trust import TrustBook
from switch.store import open_store
from terminals.offline import Entry, Limits, OfflineDecline, OfflineTerminal
from terminals.offline_device import DeviceRefusal, PayerDevice

NOW = 1_800_000_000
ISSUER = "bank-a"


@dataclass
class SeedResult:
    seed: int
    honest: int = 0
    dishonest: int = 0
    caught: int = 0
    honest_flagged: int = 0
    honest_paid_wrong: int = 0
    merchant_paid: int = 0
    hold_overused: int = 0
    uploads: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.caught == self.dishonest
            and not self.honest_flagged
            and not self.honest_paid_wrong
            and not self.merchant_paid
            and not self.hold_overused
        )


class _Seed:
    def __init__(self, seed: int, work: Path) -> None:
        self.rng = random.Random(seed)
        self.prefix = f"al-s{seed}-"
        self.work = work
        self.keys = {1: ecdsa.SoftwareKey()}
        self.book = TrustBook()
        self.book.publish_keys(ISSUER, {1: self.keys[1].public_key()})
        self.books = OfflineBooks(work / "issuer.db")
        self.terminals = [
            OfflineTerminal(work / f"t{i}.db", f"S{seed}-T{i}", f"M{i}")
            for i in range(self.rng.randint(2, 4))
        ]
        self.limits = Limits(floor_limit=4_000, per_card_count=50, per_card_total=1_000_000)
        for t in self.terminals:
            t.install(self.book.for_terminals(), self.limits)
        self.devices: dict[str, PayerDevice] = {}
        self.honest: dict[str, str] = {}  # spend digest -> allowance id
        self.dishonest_merchant: list[bytes] = []  # body + sig digests of merchant acts
        self.dishonest_cards: set[str] = set()  # allowance ids of cloned devices
        self.n = 0

    def _grant(self, name: str, key: ecdsa.SoftwareKey) -> PayerDevice:
        version = max(self.keys)
        a = Allowance(
            ISSUER, version, f"{self.prefix}{name}", f"tok-{name}", key.public_key(),
            3_000, self.rng.choice([6_000, 10_000, 20_000]), 12, "EUR", NOW - 60, NOW + 86_400,
        )  # fmt: skip
        signed = sign_allowance(a, self.keys[version].sign_digest)
        self.books.hold(a.allowance_id, f"acct-{name}", "EUR", a.cumulative_cap)
        d = PayerDevice(self.work / f"dev-{name}.db", key)
        d.load(signed)
        self.devices[name] = d
        return d

    def _pay_at(self, d: PayerDevice, t: OfflineTerminal, honest: bool) -> bool:
        amount = self.rng.randint(1, 30) * 100
        try:
            s = d.spend(amount, "EUR", t.merchant_id, t.terminal_id, NOW + self.n)
        except DeviceRefusal:
            return False
        self.n += 1
        try:
            t.approve(d.allowance(), s, NOW + self.n)
        except OfflineDecline:
            return False
        if honest:
            self.honest[Spend.parse(s.body).digest().hex()] = Spend.parse(s.body).allowance_id
        return True

    def play(self) -> int:
        """Run the offline period; returns the number of dishonest acts."""
        rng = self.rng
        cards = [f"c{i}" for i in range(rng.randint(3, 6))]
        for c in cards:
            self._grant(c, ecdsa.SoftwareKey())
        if rng.random() < 0.3:  # rotation: new allowances under v2, old ones still valid
            self.keys[2] = ecdsa.SoftwareKey()
            self.book.publish_keys(ISSUER, {2: self.keys[2].public_key()})
            for t in self.terminals:
                t.install(self.book.for_terminals(), self.limits)
            self._grant("rot", ecdsa.SoftwareKey())
            cards.append("rot")
        acts = 0
        for _ in range(rng.randint(8, 20)):
            c = rng.choice(cards)
            self._pay_at(self.devices[c], rng.choice(self.terminals), c not in self.clones)
        for kind in rng.sample(["clone", "jump", "replay", "tamper", "forge"], rng.randint(0, 4)):
            acts += getattr(self, f"_{kind}")()
        for _ in range(rng.randint(0, 6)):  # more honest traffic after the attacks
            c = rng.choice(cards)
            if c not in self.clones:
                self._pay_at(self.devices[c], rng.choice(self.terminals), True)
        return acts

    clones: set[str] = set()

    def _copy(self, name: str) -> PayerDevice:
        original = self.devices[name]
        path = self.work / f"dev-{name}-clone{self.n}.db"
        original._conn.execute("PRAGMA wal_checkpoint(FULL)")
        shutil.copy(self.work / f"dev-{name}.db", path)
        self.clones = self.clones | {name}
        # The original's spends are no longer honest: the card is compromised.
        for digest, al in list(self.honest.items()):
            if al == f"{self.prefix}{name}":
                del self.honest[digest]
        return PayerDevice(path, original.signer)

    def _fresh_card(self) -> str:
        name = f"x{self.n}"
        self._grant(name, ecdsa.SoftwareKey())
        return name

    def _clone(self) -> int:
        name = self._fresh_card()
        clone = self._copy(name)
        t1, t2 = self.rng.sample(self.terminals, 2)
        spent = 0
        for _ in range(self.rng.randint(1, 3)):
            a = self._pay_at(self.devices[name], t1, False)
            b = self._pay_at(clone, t2, False)
            spent += int(a and b)
        if spent:
            self.dishonest_cards.add(f"{self.prefix}{name}")
        return 1 if spent else 0

    def _jump(self) -> int:
        name = self._fresh_card()
        self._pay_at(self.devices[name], self.rng.choice(self.terminals), False)
        clone = self._copy(name)
        t1, t2 = self.rng.sample(self.terminals, 2)
        if not self._pay_at(self.devices[name], t1, False):
            return 0
        # The clone skips one counter so as not to collide: its link names spend n-1.
        clone._conn.execute("UPDATE wallet SET counter = counter + 1")
        if not self._pay_at(clone, t2, False):
            return 0
        self.dishonest_cards.add(f"{self.prefix}{name}")
        return 1

    def _victim(self) -> tuple[OfflineTerminal, int] | None:
        """An honest journalled sale (so acts never stack on one another)."""
        for t in self.rng.sample(self.terminals, len(self.terminals)):
            rows = [
                int(seq)
                for seq, body in t._conn.execute("SELECT seq, spend FROM journal").fetchall()
                if ecdsa.sha256(bytes(body)).hex() in self.honest
                and Spend.parse(bytes(body)).terminal_id == t.terminal_id  # not a replayed copy
            ]
            if rows:
                return t, self.rng.choice(rows)
        return None

    def _replay(self) -> int:
        found = self._victim()
        if found is None:
            return 0
        src, seq = found
        dst = self.rng.choice([t for t in self.terminals if t is not src])
        row = src._conn.execute(
            "SELECT allowance, allowance_sig, spend, spend_sig, allowance_id, counter, "
            "card_token, amount, currency, trust_version, approved_at FROM journal WHERE seq = ?",
            (seq,),
        ).fetchone()
        try:
            dst._conn.execute(
                "INSERT INTO journal (allowance, allowance_sig, spend, spend_sig, allowance_id, "
                "counter, card_token, amount, currency, trust_version, approved_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        except Exception:  # the destination already holds that counter
            return 0
        self.dishonest_merchant.append(ecdsa.sha256(bytes(row[2]) + bytes(row[3])))
        return 1

    def _tamper(self) -> int:
        found = self._victim()
        if found is None:
            return 0
        t, seq = found
        body, sig = t._conn.execute(
            "SELECT spend, spend_sig FROM journal WHERE seq = ?", (seq,)
        ).fetchone()
        s = Spend.parse(bytes(body))
        forged = Spend(s.allowance_id, s.counter, s.amount + 100, s.currency, s.merchant_id,
                       s.terminal_id, s.time, s.prev_hash).canonical()  # fmt: skip
        t._conn.execute("UPDATE journal SET spend = ? WHERE seq = ?", (forged, seq))
        self.honest.pop(s.digest().hex(), None)  # the honest spend is gone from the journal
        self.dishonest_merchant.append(ecdsa.sha256(forged + bytes(sig)))
        return 1

    def _forge(self) -> int:
        t = self.rng.choice(self.terminals)
        d = self.devices[self._fresh_card()]
        a = Allowance.parse(d.allowance().body)
        s = Spend(a.allowance_id, 1, 500, "EUR", t.merchant_id, t.terminal_id, NOW, a.genesis())
        sig = ecdsa.SoftwareKey().sign_digest(s.digest())
        t._conn.execute(
            "INSERT INTO journal (allowance, allowance_sig, spend, spend_sig, allowance_id, "
            "counter, card_token, amount, currency, trust_version, approved_at) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, 500, 'EUR', ?, ?)",
            (d.allowance().body, d.allowance().signature, s.canonical(), sig, a.allowance_id,
             a.card_token, self.book.version, NOW),
        )  # fmt: skip
        self.dishonest_merchant.append(ecdsa.sha256(s.canonical() + sig))
        return 1


def _up(t: OfflineTerminal, e: Entry) -> Upload:
    return Upload(t.terminal_id, t.merchant_id, e.seq, e.allowance, e.spend, e.trust_version)


async def run_seed(seed: int, store_url: str, work: Path) -> SeedResult:
    sim = _Seed(seed, work)
    result = SeedResult(seed)
    result.dishonest = sim.play()
    payments: dict[str, list[Payment]] = {}  # money moved at the issuer, per spend

    async def pay(p: Payment) -> None:
        if not sim.books.post(p.key, p.allowance_id, p.amount).repeated:
            payments.setdefault(p.key, []).append(p)

    async with open_store(store_url) as store:
        settlement = OfflineSettlement(store, sim.book, pay, clock=lambda: float(NOW))
        # Uploads in random order, each possibly cut halfway and resumed, some repeated.
        order = [t for t in sim.terminals for _ in range(sim.rng.randint(1, 2))]
        sim.rng.shuffle(order)
        for t in order:
            entries = t.pending(after=await store.offline_upload_mark(t.terminal_id))
            cut = sim.rng.randint(0, len(entries)) if sim.rng.random() < 0.4 else len(entries)
            for e in entries[:cut]:
                up = _up(t, e)
                await settlement.settle(up)
                result.uploads += 1
                await store.advance_offline_upload_mark(t.terminal_id, e.seq)
                t.mark_synced(e.seq)
            if sim.rng.random() < 0.2 and entries:  # a repeated upload of what was sent
                e = entries[0]
                await settlement.settle(_up(t, e))
        for t in sim.terminals:  # everything left
            for e in t.pending(after=await store.offline_upload_mark(t.terminal_id)):
                await settlement.settle(_up(t, e))
                await store.advance_offline_upload_mark(t.terminal_id, e.seq)
        cases = [c for c in await store.offline_cases() if c.allowance_id.startswith(sim.prefix)]
    for name in sim.devices:
        st = sim.books.state(f"{sim.prefix}{name}")
        if st is not None and st.used > st.cap:
            result.hold_overused += 1
    flagged_digests = {c.digest for c in cases}
    flagged_allowances = {c.allowance_id for c in cases if c.liability == "cardholder"}
    result.honest = len(sim.honest)
    for digest in sim.honest:
        if digest in flagged_digests:
            result.honest_flagged += 1
            result.misses.append(f"honest {digest[:12]} flagged")
        if len(payments.get(digest, [])) != 1:
            result.honest_paid_wrong += 1
            result.misses.append(f"honest {digest[:12]} paid {len(payments.get(digest, []))}")
    for al in sim.dishonest_cards:  # a clone is caught when its allowance carries a case
        if al in flagged_allowances:
            result.caught += 1
        else:
            result.misses.append(f"clone of {al} not caught")
    for d in sim.dishonest_merchant:
        if d.hex() in flagged_digests:
            result.caught += 1
        else:
            result.misses.append(f"merchant act {d.hex()[:12]} not caught")
        for ps in payments.values():
            if any(p.key == d.hex() for p in ps):
                result.merchant_paid += 1
    assert result.dishonest == len(sim.dishonest_merchant) + len(sim.dishonest_cards)
    sim.books.close()
    return result


async def campaign(seeds: range, store: str, root: Path) -> list[SeedResult]:
    results = []
    for seed in seeds:
        work = root / f"seed-{seed}"
        work.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{work}/store.db?synchronous=normal" if store == "sqlite" else store
        results.append(await run_seed(seed, url, work))
    return results


def _drop_keyspace(url: str) -> None:
    """The campaign's keyspace goes when it is done (the dev node is shared)."""
    from cassandra.cluster import Cluster

    from switch.store.cassandra.config import parse_url

    cfg = parse_url(url)
    cluster = Cluster(list(cfg.hosts), port=cfg.port)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {cfg.keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--store", default="sqlite", help="sqlite, or a cassandra:// URL")
    p.add_argument("--out", default="benchmarks/results/offline-campaign.json")
    args = p.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="offline-campaign-") as tmp:
        results = asyncio.run(
            campaign(range(args.first, args.first + args.seeds), args.store, Path(tmp))
        )
    if args.store.startswith("cassandra://"):
        _drop_keyspace(args.store)
    summary = {
        "seeds": len(results),
        "store": args.store.split(":")[0],
        "dishonest_acts": sum(r.dishonest for r in results),
        "caught": sum(r.caught for r in results),
        "honest_spends": sum(r.honest for r in results),
        "honest_flagged": sum(r.honest_flagged for r in results),
        "honest_paid_not_once": sum(r.honest_paid_wrong for r in results),
        "merchant_fault_paid": sum(r.merchant_paid for r in results),
        "hold_overused": sum(r.hold_overused for r in results),
        "uploads_settled": sum(r.uploads for r in results),
        "failed_seeds": [r.seed for r in results if not r.ok],
        "seconds": round(time.monotonic() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    for r in results:
        if not r.ok:
            print(f"seed {r.seed}: {r.misses}", file=sys.stderr)
    return 0 if not summary["failed_seeds"] else 1


if __name__ == "__main__":
    sys.exit(main())
