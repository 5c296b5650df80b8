"""AES-DUKPT (ANSI X9.24-3-2017) through the HSM code path, checked against published vectors.

Vector sources (AES-128 BDK FEDCBA9876543210F1F1F1F1F1F1F1F1, initial key ID 1234567890123456):
- ASC X9, ANSI X9.24-3-2017 Annex B.1 sample vectors and the "X9.24-3-2017 Supplement Test
  Vectors" (https://x9.org/standards/x9-24-part-3-test-vectors/, file
  X9.24-3-2017-Test-Vectors-20180129-1.pdf): initial key, per-counter derivation keys and the
  PIN-encryption / MAC-generation / data-encryption working keys of counters 1, 2 and 8.
- openemv/dukpt, test/dukpt_aes128_test.c and test/dukpt_aes_test.c, which transcribe the IK and
  the derivation keys of counters 1-8, 0x1FFFE, 0x20000, 0x20001 and the last four counters from
  that supplement (pages 2, 5 and 6).
- moov-io/dukpt, pkg/aes/aes_test.go: request AES-CMAC and AES-CBC (zero IV, zero padding)
  ciphertexts of the Table 4 data "4012345678909D987" for counters 1-3, computed under the
  supplement's keys (here they also cross-check the working keys above).

Derived keys are non-extractable, so each check runs an operation in the HSM with the derived
key and compares it with the same operation computed by ``cryptography`` under the published
key value (``cryptography`` only checks results).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from hsm import dukpt, kif
from hsm.dukpt import KeyUsage, Ksn
from hsm.errors import IntegrityError
from terminals.secure_element import SecureElement, next_counter

BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = bytes.fromhex("1234567890123456")
IK = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")

DERIVATION_KEYS = {
    0x00000001: "4F21B565BAD9835E112B6465635EAE44",
    0x00000002: "2F34D68DE10F68D38091A73B9E7C437C",
    0x00000003: "031504E530365CF81264238540518318",
    0x00000004: "0EEFC7ADA628BA68878DA9165A8A1887",
    0x00000005: "C2A7AC328A5DA2D6002D62465BFC028B",
    0x00000006: "D30F7D9351DA58448A2F5E92B4EE3B7D",
    0x00000007: "A8253CEED9AC042C54F75D35C8352278",
    0x00000008: "718EE6CF0B27E53D5F7AF99C4D8146A2",
    0x0001FFFE: "E21E8C8D347F8561A2BE752DAA85A111",
    0x00020000: "F7AE9025468A25D37B7249CFFED224C8",
    0x00020001: "692C8EA4013645135B36497131DF9D2C",
    0xFFFE2000: "48E585B694EB0B18D5C35443E163C0BA",
    0xFFFE4000: "396C2C7CA1EA701C03B86B7D41F0C562",
    0xFFFE8000: "0387625F189B58AE03EF0E8CCA41105E",
    0xFFFF0000: "F6BA59389BD14A9855BE9727E7C52E3C",
}

WORKING_KEYS = {
    (1, KeyUsage.PIN_ENCRYPTION): "AF8CB133A78F8DC2D1359F18527593FB",
    (1, KeyUsage.MAC_GENERATION): "A2DC23DE6FDE0824A2BC321E08E4B8B7",
    (1, KeyUsage.DATA_ENCRYPT): "A35C412EFD41FDB98B69797C02DCD08F",
    (2, KeyUsage.PIN_ENCRYPTION): "D30BDC73EC9714B000BEC66BDB7B6D09",
    (8, KeyUsage.PIN_ENCRYPTION): "4D9DF3FBEE3448FC3E676D04320A90F5",
    (8, KeyUsage.MAC_GENERATION): "6FD572E5D59E618875F193484F9178FB",
    (8, KeyUsage.DATA_ENCRYPT): "650F34204ABD4E57764D61AC3D266FB1",
}

# moov-io/dukpt: CMAC (request) and AES-CBC zero-IV, zero-padded ciphertext (request) of
# "4012345678909D987" for counters 1..3.
MAC_DATA = b"4012345678909D987"
REQUEST_CMAC = {
    1: "A2EB5C1C35809E58404E873C3C411E31",
    2: "4D104704C53491A60944193DCAF6B411",
    3: "6A18904AA8E966A03505F5EEBDAEBD82",
}
REQUEST_DATA = {
    1: "E5AFA5B408A3310E3D779C8A9A2AE29448BD5B4232582090DB703AF647205A79",
    2: "A17A9658EE0F451D6CA11B65B592EF9C5F90BB175D926F1457B63B3273042476",
    3: "E289C32A084A39419A6C147DE40B53A67BABE2BD22DC3D5EE09B002E83B93ACE",
}


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - checking vectors
    return enc.update(block) + enc.finalize()


def import_test_bdk(session):
    """Test only: the published BDK as a session object, DERIVE only."""
    return session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.DERIVE: True,
            Attribute.ENCRYPT: False,
            Attribute.DECRYPT: False,
            Attribute.SIGN: False,
            Attribute.VERIFY: False,
            Attribute.VALUE: BDK,
        }
    )


PROBE = bytes(range(16))


def _probe_via_child(key) -> bytes:
    """Check a DERIVE-only key: derive child = AES(key, PROBE) with ENCRYPT, encrypt zeros."""
    child = dukpt.derive_aes128(key, PROBE, {Attribute.ENCRYPT})
    try:
        return child.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)
    finally:
        child.destroy()


def _expected_probe(key_value: bytes) -> bytes:
    return _aes_ecb(_aes_ecb(key_value, PROBE), bytes(16))


def test_derivation_data_layout():
    assert dukpt.derivation_data(KeyUsage.KEY_DERIVATION_INITIAL, IKID).hex().upper() == (
        "01018001000200801234567890123456"
    )
    assert dukpt.derivation_data(KeyUsage.PIN_ENCRYPTION, IKID, 1).hex().upper() == (
        "01011000000200809012345600000001"
    )


def test_initial_key_matches_published_vector(hsm_pool):
    def job(session):
        bdk = import_test_bdk(session)
        try:
            ik = dukpt.derive_initial_key(bdk, IKID)
            try:
                assert not ik[Attribute.EXTRACTABLE] and ik[Attribute.SENSITIVE]
                assert not ik[Attribute.TOKEN] and not ik[Attribute.ENCRYPT]
                return _probe_via_child(ik)
            finally:
                ik.destroy()
        finally:
            bdk.destroy()

    assert hsm_pool.run_sync(job) == _expected_probe(IK)


def test_transaction_derivation_keys_match_published_vectors(hsm_pool):
    published = {c: bytes.fromhex(v) for c, v in DERIVATION_KEYS.items()}

    def job(session):
        bdk = import_test_bdk(session)
        out = {}
        try:
            for counter in published:
                with dukpt.transaction_key(session, Ksn(IKID, counter), bdk) as tk:
                    child = tk.child_for_test(PROBE)
                    out[counter] = child.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)
        finally:
            bdk.destroy()
        return out

    got = hsm_pool.run_sync(job)
    for counter, value in published.items():
        assert got[counter] == _expected_probe(value), hex(counter)


def test_working_keys_match_published_vectors(hsm_pool):
    """PIN key decrypts, MAC key CMACs, data key decrypts exactly as the published keys do."""
    block = bytes.fromhex("441234AAAAAAAAAA2F69ADDE2E9E7ACE")

    def job(session):
        bdk = import_test_bdk(session)
        out = {}
        try:
            for counter in sorted({c for c, _ in WORKING_KEYS}):
                with dukpt.transaction_key(session, Ksn(IKID, counter), bdk) as tk:
                    for (c, usage), value in WORKING_KEYS.items():
                        if c != counter:
                            continue
                        key = tk.working_key(usage)
                        pub = bytes.fromhex(value)
                        if usage == KeyUsage.MAC_GENERATION:
                            assert not key[Attribute.DECRYPT] and not key[Attribute.DERIVE]
                            out[(c, usage)] = key.sign(MAC_DATA, mechanism=Mechanism.AES_CMAC)
                        else:
                            assert not key[Attribute.ENCRYPT] and not key[Attribute.DERIVE]
                            ct = _aes_ecb(pub, block)
                            out[(c, usage)] = key.decrypt(ct, mechanism=Mechanism.AES_ECB)
        finally:
            bdk.destroy()
        return out

    got = hsm_pool.run_sync(job)
    for (counter, usage), value in WORKING_KEYS.items():
        pub = bytes.fromhex(value)
        if usage == KeyUsage.MAC_GENERATION:
            c = CMAC(algorithms.AES(pub))
            c.update(MAC_DATA)
            assert got[(counter, usage)] == c.finalize(), (counter, usage)
        else:
            assert got[(counter, usage)] == block, (counter, usage)


def test_request_cmac_and_data_vectors(hsm_pool):
    def job(session):
        bdk = import_test_bdk(session)
        out = {}
        try:
            for counter in REQUEST_CMAC:
                with dukpt.transaction_key(session, Ksn(IKID, counter), bdk) as tk:
                    mac = tk.working_key(KeyUsage.MAC_GENERATION).sign(
                        MAC_DATA, mechanism=Mechanism.AES_CMAC
                    )
                    data_key = tk.working_key(KeyUsage.DATA_ENCRYPT)
                    ct = bytes.fromhex(REQUEST_DATA[counter])
                    out[counter] = (mac, dukpt.cbc_decrypt(data_key, ct, padded=False))
        finally:
            bdk.destroy()
        return out

    for counter, (mac, plain) in hsm_pool.run_sync(job).items():
        assert mac.hex().upper() == REQUEST_CMAC[counter]
        assert plain == MAC_DATA + bytes(32 - len(MAC_DATA))


def test_terminal_sim_agrees_with_vectors_and_hsm(hsm_pool):
    se = SecureElement.with_initial_key(IKID, IK)
    txs = [se.begin() for _ in range(3)]
    assert [t.ksn.hex() for t in txs] == [f"1234567890123456{c:08X}" for c in (1, 2, 3)]
    for t in txs:
        assert t.mac(MAC_DATA).hex().upper() == REQUEST_CMAC[t.ksn.counter]
    secret = b"PAN=4111111111111111;EXP=2812"
    ct = txs[2].encrypt_card_data(secret)

    def job(session):
        bdk = import_test_bdk(session)
        try:
            return dukpt.decrypt_card_data(session, bytes(txs[2].ksn), ct, bdk)
        finally:
            bdk.destroy()

    assert hsm_pool.run_sync(job) == secret


def test_next_counter_skips_more_than_16_bits():
    assert next_counter(0) == 1
    assert next_counter(0x0001FFFE) == 0x00020000  # 0x1FFFF has 17 one-bits
    assert next_counter(0xFFFE8000) == 0xFFFF0000
    with pytest.raises(OverflowError):
        next_counter(0xFFFF0000)


def _badly_padded(hsm_pool, ksn: Ksn) -> bytes:
    """A 32-byte ciphertext whose clear last byte is not PKCS#7 padding under ``ksn``'s key.

    A fixed ciphertext would decrypt to valid padding about once in 200 runs (the BDK is new
    each run), so the candidate is checked with an unpadded decryption first.
    """

    def last_clear_byte(session, ct: bytes) -> int:
        with dukpt.transaction_key(session, ksn) as tk:
            key = tk.working_key(KeyUsage.DATA_ENCRYPT)
            return dukpt.cbc_decrypt(key, ct, padded=False)[-1]

    for i in range(64):
        candidate = bytes(31) + bytes([i])
        if hsm_pool.run_sync(last_clear_byte, candidate) not in range(1, 17):
            return candidate
    raise AssertionError("no badly padded candidate in 64 tries")


def test_bad_ksn_and_bad_ciphertext(hsm_pool, hsm_keys):
    with pytest.raises(ValueError):
        Ksn(IKID, 0x0001FFFF)
    with pytest.raises(ValueError):
        Ksn.from_bytes(b"short")
    with pytest.raises(ValueError):
        Ksn(IKID, 0)
    ksn = Ksn(IKID, 5)
    for bad in (b"", bytes(15), _badly_padded(hsm_pool, ksn)):
        with pytest.raises(IntegrityError):
            hsm_pool.run_sync(dukpt.decrypt_card_data, ksn, bad)
    # the session survives a padding failure
    assert hsm_pool.run_sync(lambda s: len(s.generate_random(64))) == 8


def test_switch_bdk_injection_round_trip(hsm_pool, hsm_keys):
    """Key injection from the ceremony BDK: terminal encrypts, switch decrypts in the HSM."""
    se = SecureElement()
    modulus, exponent = se.transport_public_key()
    ikid = bytes.fromhex("00000001A1B2C3D4")
    wrapped = hsm_pool.run_sync(kif.wrap_initial_key_for_terminal, ikid, modulus, exponent).wrapped
    se.load_initial_key(ikid, wrapped)
    for _ in range(3):
        tx = se.begin()
        ct = tx.encrypt_card_data(b"4000000000000002=2812")
        assert hsm_pool.run_sync(dukpt.decrypt_card_data, tx.ksn, ct) == b"4000000000000002=2812"
    assert "ikid" in repr(se) and wrapped.hex() not in repr(se)


def _session_objects(session):
    from hsm.pool import pool_scratch

    chain = (pool_scratch(session) or {}).get("dukpt.chain", {})
    return len(list(session.get_objects({Attribute.TOKEN: False}))), len(chain)


@pytest.fixture
def injected(hsm_pool, hsm_keys):
    se = SecureElement()
    m, e = se.transport_public_key()
    ikid = bytes.fromhex("00000001") + os.urandom(4)
    se.load_initial_key(
        ikid, hsm_pool.run_sync(kif.wrap_initial_key_for_terminal, ikid, m, e).wrapped
    )
    return se


def test_only_the_chain_cache_keeps_objects(hsm_pool, injected):
    before, chain_before = hsm_pool.run_sync(_session_objects)
    tx = injected.begin()
    hsm_pool.run_sync(dukpt.decrypt_card_data, tx.ksn, tx.encrypt_card_data(b"x"))
    # A block that decrypts to sixteen zero bytes: its last byte is never PKCS#7 padding (a
    # fixed ciphertext under this run's fresh key would be valid padding about once in 200).
    key = tx._working(KeyUsage.DATA_ENCRYPT)
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    unpadded = enc.update(bytes(16)) + enc.finalize()
    with pytest.raises(IntegrityError):
        hsm_pool.run_sync(dukpt.decrypt_card_data, tx.ksn, unpadded)
    after, chain_after = hsm_pool.run_sync(_session_objects)
    assert after - before == chain_after - chain_before > 0  # no working key left behind


def test_chain_cache_is_bounded_and_correct(hsm_pool, injected, monkeypatch):
    monkeypatch.setattr(dukpt, "CHAIN_CACHE_SIZE", 8)
    rng = random.Random(3)
    counters = sorted({rng.randrange(1, 2**21) for _ in range(40)} | set(range(1, 20)))
    rng.shuffle(counters)
    for c in counters:
        if c.bit_count() > 16:
            continue
        tx = injected.transaction_at(c)
        ct = tx.encrypt_card_data(b"card-%d" % c)
        assert hsm_pool.run_sync(dukpt.decrypt_card_data, tx.ksn, ct) == b"card-%d" % c
    _, chain = hsm_pool.run_sync(_session_objects)
    assert chain <= 8
    uncached = hsm_pool.run_sync(lambda s: _open_uncached(s, injected.transaction_at(12345)))
    assert uncached == b"probe"


def _open_uncached(session, tx):
    with dukpt.transaction_key(session, tx.ksn, cache=False) as tk:
        key = tk.working_key(KeyUsage.DATA_ENCRYPT)
        return dukpt.cbc_decrypt(key, tx.encrypt_card_data(b"probe"))


def test_the_published_terminal_vectors_carry_these_x9_24_3_keys():
    """docs/vectors/terminal-v1.json, which integrators check their terminals against, derives
    from this sample BDK: its IK, derivation keys and working keys are the published ones."""
    doc = json.loads(
        (Path(__file__).resolve().parents[2] / "docs/vectors/terminal-v1.json").read_text()
    )["dukpt"]
    assert (doc["bdk"], doc["initial_key_id"], doc["initial_key"]) == (
        BDK.hex().upper(),
        IKID.hex().upper(),
        IK.hex().upper(),
    )
    names = {
        KeyUsage.PIN_ENCRYPTION: "pin_encryption",
        KeyUsage.MAC_GENERATION: "mac_generation",
        KeyUsage.DATA_ENCRYPT: "data_encryption",
    }
    checked = 0
    for t in doc["transactions"]:
        if t["counter"] in DERIVATION_KEYS:
            assert t["derivation_key"] == DERIVATION_KEYS[t["counter"]], t["counter"]
            checked += 1
        for (counter, usage), value in WORKING_KEYS.items():
            if counter == t["counter"]:
                assert t["keys"][names[usage]] == value, (counter, usage)
                checked += 1
    assert checked == 8 + len(WORKING_KEYS)  # counters 1-8 and every published working key
