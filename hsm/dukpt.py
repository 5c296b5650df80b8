"""AES-DUKPT (ANSI X9.24-3-2017), switch side: every derivation inside the HSM.

Mechanism: C_DeriveKey with CKM_AES_ECB_ENCRYPT_DATA. X9.24-3 derives each AES-128 key as one
AES-ECB encryption of a 16-byte derivation-data block under the parent key; the PKCS#11
encrypt-data derivation computes exactly that and keeps the result in the token as a key object,
so no key value ever reaches host memory. (TDES-DUKPT, X9.24-1, needs XOR/concatenate
derivations SoftHSM lacks; AES-DUKPT needs none.)

Chain for a KSN (initial key ID ``ikid`` 8 bytes || 32-bit counter):

  BDK (token, DERIVE only)
   -> initial key IK = AES(BDK, 01 01 8001 0002 0080 || ikid)            [DERIVE only]
   -> for each 1-bit of the counter, high to low, working_counter |= bit:
        D = AES(D, 01 01 8000 0002 0080 || ikid[4:8] || working_counter) [DERIVE only]
   -> working key = AES(D, 01 01 <usage> 0002 0080 || ikid[4:8] || counter)

Every derived key is a session object (CKA_TOKEN false), SENSITIVE, non-EXTRACTABLE, and carries
CKA_DERIVE only when it derives further. Working keys are destroyed when the
:func:`transaction_key` block exits (and by SoftHSM when the session closes, whatever happens).

Chain cache. Inside a pool job, IKs and intermediate derivation keys (DERIVE-only session objects,
keyed by BDK label, initial key ID and counter prefix) stay in an LRU of
:data:`CHAIN_CACHE_SIZE` objects, destroyed on eviction and with the work session. A terminal's
consecutive counters share their high bits, so a transaction typically needs one or two
derivations plus its working keys instead of 1 + popcount(counter) + working keys. This mirrors
the terminal's own intermediate-key registers; it exposes nothing new (the session can derive
from the BDK anyway). Outside pool jobs the chain is derived and destroyed per call.

Host capabilities of working keys (the host mirrors the terminal): PIN encryption -> DECRYPT
(the switch decrypts/translates PIN blocks); MAC generation -> SIGN (the switch recomputes the
terminal's request MAC and compares); MAC verification -> SIGN (X9.24-3's "MAC, response"
usage 0x2001: the switch MACs each answer under it, ``hsm.mac.sign_response``, and the terminal
verifies); data encryption (encrypt direction, the terminal's) -> DECRYPT; data decryption
(response direction) -> ENCRYPT.

Card data: AES-128-CBC under the data-encryption (request) key, IV = 16 zero bytes, PKCS#7
padding (CKM_AES_CBC_PAD). A zero IV is safe here because every KSN yields a fresh key and the
terminal encrypts exactly one card-data record per KSN. The switch opens requests with
``hsm.mac.open_request``, which checks the MAC over the ciphertext before decrypting, so padding
errors cannot serve as an oracle.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11 import exceptions as px

from hsm import labels as L
from hsm.errors import IntegrityError
from hsm.pool import get_key, pool_scratch
from hsm.templates import secret_key_template

BDK_LABEL = L.label(L.SWITCH, L.BDK, 1)
IKID_LEN = 8
KSN_LEN = 12
ZERO_IV = bytes(16)
MAX_COUNTER_BITS = 16  # X9.24-3: a valid counter has at most 16 one-bits
# The last valid counter (16 one-bits, high): every larger 32-bit value has more one-bits. A
# device past it is exhausted and needs a new initial key.
LAST_COUNTER = 0xFFFF0000

_ALGORITHM_AES128 = 0x0002
_LENGTH_AES128 = 0x0080


class KeyUsage(IntEnum):
    """Key usage indicators of the X9.24-3 derivation data."""

    KEY_ENCRYPTION = 0x0002
    PIN_ENCRYPTION = 0x1000
    MAC_GENERATION = 0x2000
    MAC_VERIFICATION = 0x2001
    MAC_BOTH = 0x2002
    DATA_ENCRYPT = 0x3000
    DATA_DECRYPT = 0x3001
    DATA_BOTH = 0x3002
    KEY_DERIVATION = 0x8000
    KEY_DERIVATION_INITIAL = 0x8001


HOST_CAPABILITY: dict[KeyUsage, Attribute] = {
    KeyUsage.PIN_ENCRYPTION: Attribute.DECRYPT,
    KeyUsage.MAC_GENERATION: Attribute.SIGN,
    KeyUsage.MAC_VERIFICATION: Attribute.SIGN,
    KeyUsage.DATA_ENCRYPT: Attribute.DECRYPT,
    KeyUsage.DATA_DECRYPT: Attribute.ENCRYPT,
}


@dataclass(frozen=True, slots=True)
class Ksn:
    """AES-DUKPT key serial number: initial key ID (8 bytes) and transaction counter (32 bits)."""

    ikid: bytes
    counter: int

    def __post_init__(self) -> None:
        if len(self.ikid) != IKID_LEN:
            raise ValueError("KSN initial key ID must be 8 bytes")
        if not 0 < self.counter < 2**32:
            raise ValueError("KSN counter out of range")
        if self.counter.bit_count() > MAX_COUNTER_BITS:
            raise ValueError("KSN counter has more than 16 one-bits")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Ksn:
        if len(raw) != KSN_LEN:
            raise ValueError("AES-DUKPT KSN must be 12 bytes")
        return cls(bytes(raw[:IKID_LEN]), int.from_bytes(raw[IKID_LEN:], "big"))

    @classmethod
    def from_hex(cls, text: str) -> Ksn:
        return cls.from_bytes(bytes.fromhex(text))

    def __bytes__(self) -> bytes:
        return self.ikid + self.counter.to_bytes(4, "big")

    def hex(self) -> str:
        return bytes(self).hex().upper()


def derivation_data(usage: KeyUsage, ikid: bytes, counter: int | None = None) -> bytes:
    """The 16-byte X9.24-3 derivation-data block for an AES-128 output key."""
    head = bytes((0x01, 0x01)) + int(usage).to_bytes(2, "big")
    head += _ALGORITHM_AES128.to_bytes(2, "big") + _LENGTH_AES128.to_bytes(2, "big")
    if usage == KeyUsage.KEY_DERIVATION_INITIAL:
        return head + ikid
    assert counter is not None
    return head + ikid[4:8] + counter.to_bytes(4, "big")


_DERIVE = Attribute.DERIVE
_TEMPLATES: dict[frozenset[Attribute], dict[Attribute, Any]] = {}


def derive_aes128(parent: Any, data: bytes, capabilities: set[Attribute]) -> Any:
    """One X9.24-3 step in the HSM: AES-128 session key = AES-ECB(parent, data)."""
    if len(data) != 16:
        raise ValueError("derivation data must be one AES block")
    caps = frozenset(capabilities)
    tpl = _TEMPLATES.get(caps)
    if tpl is None:  # validated once per capability set; python-pkcs11 copies, never mutates
        tpl = _TEMPLATES[caps] = secret_key_template(token=False, capabilities=caps)
    return parent.derive_key(
        KeyType.AES,
        128,
        mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
        mechanism_param=bytes(data),
        template=tpl,
    )


def derive_initial_key(bdk: Any, ikid: bytes) -> Any:
    """IK for a terminal, from the BDK key object (session object, DERIVE only)."""
    return derive_aes128(bdk, derivation_data(KeyUsage.KEY_DERIVATION_INITIAL, ikid), {_DERIVE})


def derive_transaction_derivation_key(initial_key: Any, ksn: Ksn) -> Any:
    """Walk the counter's one-bits from the IK (the host algorithm); intermediates destroyed.

    The caller owns (and destroys) both ``initial_key`` and the returned key.
    """
    if ksn.counter == 0:
        raise ValueError("KSN counter must be non-zero")
    key = initial_key
    working = 0
    mask = 0x80000000
    try:
        while mask:
            if ksn.counter & mask:
                working |= mask
                data = derivation_data(KeyUsage.KEY_DERIVATION, ksn.ikid, working)
                nxt = derive_aes128(key, data, {_DERIVE})
                if key is not initial_key:
                    key.destroy()
                key = nxt
            mask >>= 1
    except BaseException:
        if key is not initial_key:
            key.destroy()
        raise
    return key


class TransactionKey:
    """The derivation key of one KSN inside the HSM; hands out working keys for it."""

    def __init__(
        self, session: Any, derivation_key: Any, ksn: Ksn, owns_derivation_key: bool = True
    ) -> None:
        self.session = session
        self.ksn = ksn
        self._derivation_key = derivation_key
        self._owned: list[Any] = [derivation_key] if owns_derivation_key else []

    def working_key(self, usage: KeyUsage, capability: Attribute | None = None) -> Any:
        """AES-128 working key for ``usage`` with the host-side capability (see module doc)."""
        cap = capability or HOST_CAPABILITY[usage]
        data = derivation_data(usage, self.ksn.ikid, self.ksn.counter)
        key = derive_aes128(self._derivation_key, data, {cap})
        self._owned.append(key)
        return key

    def child_for_test(self, data: bytes) -> Any:
        """ENCRYPT-only child of the derivation key (lets tests check it against vectors)."""
        key = derive_aes128(self._derivation_key, data, {Attribute.ENCRYPT})
        self._owned.append(key)
        return key

    def close(self) -> None:
        for key in reversed(self._owned):
            try:
                key.destroy()
            except px.PKCS11Error:
                pass  # the session is going away; SoftHSM drops its session objects with it
        self._owned.clear()


CHAIN_CACHE_SIZE = 2048
_CHAIN = "dukpt.chain"

# (BDK label, initial key ID, counter prefix) -> derived key handle (0 = the initial key).
_ChainId: TypeAlias = tuple[str, bytes, int]
_ChainCache: TypeAlias = OrderedDict[_ChainId, Any]


def _cached_derivation_key(session: Any, cache: _ChainCache, bdk_label: str, ksn: Ksn) -> Any:
    """The KSN's derivation key, reusing cached IKs and intermediate keys (see module doc)."""
    prefixes: list[int] = []
    working = 0
    mask = 0x80000000
    while mask:
        if ksn.counter & mask:
            working |= mask
            prefixes.append(working)
        mask >>= 1
    key = None
    start = 0
    for idx in range(len(prefixes) - 1, -1, -1):
        hit = cache.get((bdk_label, ksn.ikid, prefixes[idx]))
        if hit is not None:
            cache.move_to_end((bdk_label, ksn.ikid, prefixes[idx]))
            key, start = hit, idx + 1
            break
    if key is None:
        ik_id = (bdk_label, ksn.ikid, 0)
        key = cache.get(ik_id)
        if key is None:
            key = derive_initial_key(get_key(session, bdk_label), ksn.ikid)
            _cache_put(cache, ik_id, key)
        else:
            cache.move_to_end(ik_id)
    for working in prefixes[start:]:
        data = derivation_data(KeyUsage.KEY_DERIVATION, ksn.ikid, working)
        key = derive_aes128(key, data, {_DERIVE})
        _cache_put(cache, (bdk_label, ksn.ikid, working), key)
    return key


def _cache_put(cache: _ChainCache, ident: _ChainId, key: Any) -> None:
    cache[ident] = key
    while len(cache) > CHAIN_CACHE_SIZE:
        _, old = cache.popitem(last=False)
        try:
            old.destroy()
        except px.PKCS11Error:
            pass  # already gone with its session


@contextmanager
def transaction_key(
    session: Any, ksn: Ksn, bdk: str | Any = BDK_LABEL, *, cache: bool = True
) -> Iterator[TransactionKey]:
    """The KSN's derivation key in the HSM; working keys from it; destroyed at exit.

    ``bdk`` is a label (looked up, cached) or a key object (tests with an imported BDK; never
    chain-cached). Inside a pool job with a label, IK and intermediate keys come from and go to
    the session's chain cache; otherwise the whole chain is derived and destroyed here.
    """
    store = pool_scratch(session) if cache and isinstance(bdk, str) else None
    if store is not None:
        chain = store.get(_CHAIN)
        if chain is None:
            chain = store[_CHAIN] = OrderedDict()
        tk = TransactionKey(session, _cached_derivation_key(session, chain, bdk, ksn), ksn, False)
    else:
        bdk_key = get_key(session, bdk) if isinstance(bdk, str) else bdk
        ik = derive_initial_key(bdk_key, ksn.ikid)
        try:
            dk = derive_transaction_derivation_key(ik, ksn)
        finally:
            ik.destroy()
        tk = TransactionKey(session, dk, ksn)
    try:
        yield tk
    finally:
        tk.close()


def cbc_decrypt(key: Any, ciphertext: bytes, *, padded: bool = True, iv: bytes = ZERO_IV) -> bytes:
    """AES-CBC decryption in the HSM; malformed input raises :class:`IntegrityError`."""
    if not ciphertext or len(ciphertext) % 16:
        raise IntegrityError("ciphertext length is not a positive multiple of 16")
    mech = Mechanism.AES_CBC_PAD if padded else Mechanism.AES_CBC
    try:
        plain: bytes = key.decrypt(ciphertext, mechanism=mech, mechanism_param=iv)
        return plain
    except (
        px.EncryptedDataInvalid,
        px.EncryptedDataLenRange,
        px.DataInvalid,
        px.GeneralError,  # SoftHSM's answer to bad PKCS#7 padding
    ) as exc:
        raise IntegrityError("card data does not decrypt (bad padding)") from exc


def decrypt_card_data(
    session: Any, ksn: Ksn | bytes, ciphertext: bytes, bdk: str | Any = BDK_LABEL
) -> bytes:
    """Decrypt a terminal's card-data record (AES-CBC, zero IV, PKCS#7) for ``ksn``.

    Callers that also check a MAC should use :func:`transaction_key` once and do both, MAC
    first (see ``hsm.mac.open_request``).
    """
    k = ksn if isinstance(ksn, Ksn) else Ksn.from_bytes(ksn)
    with transaction_key(session, k, bdk) as tk:
        return cbc_decrypt(tk.working_key(KeyUsage.DATA_ENCRYPT), ciphertext)
