"""Key exchange between two parties' tokens: a KEK under RSA-OAEP, then keys as key blocks.

The key custodian runs the ceremony with both tokens open (one ``HsmPool`` per party, each
logged in with that party's PIN); every step is one job on one token, and only public values
and wrapped keys pass between them through the custodian's process.

1. KEK, in the manner of TR-34: the receiving party has an RSA-2048 key pair in its own token
   (``<party>/transport/v1``; private half SENSITIVE, non-extractable, UNWRAP only). The sending
   party generates the KBPK (AES-256) in its token, wraps it under that public key with
   CKM_RSA_PKCS_OAEP (SHA-1 and MGF1-SHA-1: SoftHSM 2.6 refuses OAEP with SHA-256, tested), and
   keeps its own copy; the receiver unwraps it with its private key. Both store it as
   ``<self>/kek.<other>/v1``, DERIVE only, and their KCVs must match. Unlike TR-34 there are no
   certificates and no signature by the sender (KDH) over the key token: the public key's
   authenticity rests on the custodian reading it from the receiver's token in the same
   ceremony; the KCV comparison catches a substituted KEK.
2. Each shared key (``KeySpec.peer``) is generated in the owner's token and leaves it once, at
   birth, as a key block (``hsm.keyblock``) under that KEK; the peer verifies the block's MAC
   and header, unwraps it into its token under its own label and checks the KCV.

Idempotent: keys present on both sides with equal KCVs are left alone. A shared key present on
one side only cannot be sent again (its token copy is non-extractable): the ceremony says so and
stops; a new version is the way out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass

from hsm import keyblock
from hsm import labels as L
from hsm.errors import HsmError, KeyNotFound
from hsm.keys import (
    DERIVE,
    SIGN,
    KeyInfo,
    KeySpec,
    compute_kcv,
    describe,
    ensure,
    generate,
    kcv_capability,
    keep,
    purpose_of,
)
from hsm.pool import HsmPool, get_key
from hsm.templates import secret_key_template, validate

OAEP = (Mechanism.SHA_1, MGF.SHA1, None)
RSA_BITS = 2048


def transport_label(party: str) -> str:
    return L.label(party, L.TRANSPORT)


def kek_label(party: str, other: str) -> str:
    return L.label(party, L.shared(L.KEK, other))


def transport_public_key(session: Any, party: str) -> tuple[bytes, bytes]:
    """HSM job on the receiver: its RSA transport public key (made on first use)."""
    label = transport_label(party)
    try:
        pub = get_key(session, label, ObjectClass.PUBLIC_KEY)
    except KeyNotFound:
        pub, _ = session.generate_keypair(
            KeyType.RSA,
            RSA_BITS,
            store=True,
            label=label,
            public_template=validate(
                {Attribute.WRAP: True, Attribute.ENCRYPT: False, Attribute.VERIFY: False}
            ),
            private_template=validate(
                {
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.UNWRAP: True,
                    Attribute.DECRYPT: False,
                    Attribute.SIGN: False,
                    Attribute.DERIVE: False,
                }
            ),
        )
    return bytes(pub[Attribute.MODULUS]), bytes(pub[Attribute.PUBLIC_EXPONENT])


def info_or_none(session: Any, label: str) -> KeyInfo | None:
    """HSM job: the key's info (label, KCV, flags), or None when the token has no such key."""
    try:
        return describe(get_key(session, label))
    except KeyNotFound:
        return None


def send_kek(
    session: Any, party: str, other: str, modulus: bytes, exponent: bytes
) -> tuple[bytes, KeyInfo]:
    """HSM job on the sender: a new KBPK, kept as ``<party>/kek.<other>/v1`` and returned
    wrapped under ``other``'s RSA transport key (RSA-OAEP)."""
    if len(modulus) * 8 < RSA_BITS:
        raise HsmError(f"{other}'s transport key is shorter than RSA-{RSA_BITS}")
    public = session.create_object(
        validate(
            {
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.KEY_TYPE: KeyType.RSA,
                Attribute.TOKEN: False,
                Attribute.MODULUS: modulus,
                Attribute.PUBLIC_EXPONENT: exponent,
                Attribute.WRAP: True,
                Attribute.ENCRYPT: False,
                Attribute.VERIFY: False,
            }
        )
    )
    out: list[bytes] = []
    try:

        def wrap(tmp: Any, _kcv: bytes) -> None:
            out.append(
                public.wrap_key(tmp, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=OAEP)
            )

        info = generate(session, party, L.shared(L.KEK, other), 1, export=wrap)
    finally:
        public.destroy()
    return out[0], info


def receive_kek(session: Any, party: str, other: str, wrapped: bytes, kcv: str) -> KeyInfo:
    """HSM job on the receiver: unwrap the KBPK with its transport private key; store it as
    ``<party>/kek.<other>/v1`` if its KCV is ``kcv``."""
    private = get_key(session, transport_label(party), ObjectClass.PRIVATE_KEY)
    tmp = private.unwrap_key(
        ObjectClass.SECRET_KEY,
        KeyType.AES,
        wrapped,
        mechanism=Mechanism.RSA_PKCS_OAEP,
        mechanism_param=OAEP,
        store=False,
        template=secret_key_template(token=False, capabilities={DERIVE, SIGN}),
    )
    try:
        return keep(session, tmp, kek_label(party, other), L.shared(L.KEK, other), kcv=_kcv(kcv))
    finally:
        tmp.destroy()


def _kcv(text: str) -> bytes:
    return bytes.fromhex(text)


def send_key(session: Any, spec: KeySpec) -> tuple[KeyInfo, str]:
    """HSM job on the owner: generate the shared key; return its info and its key block."""
    assert spec.peer is not None
    purpose = purpose_of(spec.purpose)
    kbpk = get_key(session, kek_label(spec.owner, spec.peer))
    header = keyblock.header_for(spec.purpose, purpose, 1)
    blocks: list[str] = []

    def seal(tmp: Any, kcv: bytes) -> None:
        blocks.append(keyblock.seal(kbpk, tmp, header, kcv=kcv, sender=spec.family))

    info = generate(session, spec.owner, spec.purpose, 1, export=seal)
    return info, blocks[0]


def receive_key(session: Any, spec: KeySpec, block: str) -> KeyInfo:
    """HSM job on the peer: verify the block (MAC, then header as expected for this key),
    unwrap it, store it under the peer's label with the block's KCV checked."""
    assert spec.peer is not None
    purpose_name = spec.peer_purpose()
    purpose = purpose_of(purpose_name)
    kbpk = get_key(session, kek_label(spec.peer, spec.owner))
    opened = keyblock.verify(kbpk, block)
    expected = keyblock.header_for(purpose_name, purpose, 1)
    temp_cap = kcv_capability(purpose.key_type)
    tmp = keyblock.unwrap(
        kbpk, opened, expected, purpose.key_type, set(purpose.capabilities) | {temp_cap}
    )
    try:
        return keep(session, tmp, L.label(spec.peer, purpose_name, 1), purpose_name, kcv=opened.kcv)
    finally:
        tmp.destroy()


def _pair(
    a_pool: HsmPool, a_label: str, b_pool: HsmPool, b_label: str
) -> tuple[KeyInfo, KeyInfo] | None:
    a = a_pool.run_sync(info_or_none, a_label)
    b = b_pool.run_sync(info_or_none, b_label)
    if a is not None and b is not None:
        if a.kcv != b.kcv:
            raise HsmError(f"{a_label} and {b_label} differ (KCV {a.kcv} vs {b.kcv})")
        return a, b
    if a is not None or b is not None:
        have = a_label if a is not None else b_label
        raise HsmError(
            f"{have} exists but its peer copy does not; a shared key leaves its token only at "
            "birth: retire it and make a new version"
        )
    return None


def establish_kek(a_pool: HsmPool, a: str, b_pool: HsmPool, b: str) -> list[KeyInfo]:
    """The KBPK ``a`` and ``b`` share (``a`` generates it, ``b`` receives it)."""
    have = _pair(a_pool, kek_label(a, b), b_pool, kek_label(b, a))
    if have is not None:
        return list(have)
    modulus, exponent = b_pool.run_sync(transport_public_key, b)
    wrapped, sent = a_pool.run_sync(send_kek, a, b, modulus, exponent)
    got = b_pool.run_sync(receive_kek, b, a, wrapped, sent.kcv)
    return [sent, got]


def send_cvk(session: Any, spec: KeySpec) -> tuple[list[KeyInfo], list[str]]:
    """HSM job on the issuer: a new CVK pair (``hsm.cvv.create_cvk``), both objects (K_A||K_B
    and its K_A||K_A companion) sealed as key blocks at their birth, then kept as locked-down
    token keys. Returns both infos and both blocks, pair first."""
    from hsm.cvv import create_cvk  # issuer-side module; imported only for the ceremony

    assert spec.peer is not None
    kbpk = get_key(session, kek_label(spec.owner, spec.peer))
    for name in (L.CVK, L.CVK_A):
        if info_or_none(session, L.label(spec.owner, name, 1)) is not None:
            raise HsmError(f"{spec.owner}/{name}/v1 already exists")
    made = create_cvk(session, spec.owner, 1, for_export=True)
    infos: list[KeyInfo] = []
    blocks: list[str] = []
    try:
        for name, key in ((L.CVK, made.pair), (L.CVK_A, made.left)):
            kcv = compute_kcv(key, KeyType.DES2)
            header = keyblock.header_for(name, purpose_of(name), 1)
            sender = f"{spec.owner}/{name}"
            blocks.append(keyblock.seal(kbpk, key, header, kcv=kcv, sender=sender))
            infos.append(keep(session, key, L.label(spec.owner, name, 1), name, kcv=kcv))
    finally:
        made.pair.destroy()
        made.left.destroy()
    return infos, blocks


def _peer_label(spec: KeySpec) -> str:
    assert spec.peer is not None
    return L.label(spec.peer, spec.peer_purpose(), 1)


def _objects(spec: KeySpec) -> list[KeySpec]:
    """The token objects a shared key is: itself, or for an issuer's CVK pair both K_A||K_B and
    its K_A||K_A companion (``hsm.cvv.create_cvk`` makes them together)."""
    if spec.purpose == L.CVK:
        return [KeySpec(spec.owner, name, peer=spec.peer) for name in (L.CVK, L.CVK_A)]
    return [spec]


def _send(session: Any, spec: KeySpec) -> tuple[list[KeyInfo], list[str]]:
    """HSM job on the owner: every object of ``spec`` made and sealed, in ``_objects`` order."""
    if spec.purpose == L.CVK:
        return send_cvk(session, spec)
    info, block = send_key(session, spec)
    return [info], [block]


def share(owner_pool: HsmPool, peer_pool: HsmPool, spec: KeySpec) -> list[KeyInfo]:
    """The shared key of ``spec`` in both tokens (KEK first); returns both sides' info."""
    assert spec.peer is not None
    if spec.purpose.split(".", 1)[0] == L.CVK_A:
        raise HsmError(f"{spec.family}: K_A||K_A is shared with its pair: share {L.CVK}")
    objects = _objects(spec)
    have = [
        _pair(owner_pool, L.label(o.owner, o.purpose, 1), peer_pool, _peer_label(o))
        for o in objects
    ]
    if all(h is not None for h in have):
        return [info for pair in have if pair is not None for info in pair]
    if any(h is not None for h in have):
        raise HsmError(f"{spec.family}: only half of the CVK pair is shared; make a new version")
    establish_kek(owner_pool, spec.owner, peer_pool, spec.peer)
    sent, blocks = owner_pool.run_sync(_send, spec)
    got = [peer_pool.run_sync(receive_key, o, b) for o, b in zip(objects, blocks, strict=True)]
    for a, b in zip(sent, got, strict=True):
        if a.kcv != b.kcv:  # receive_key checked it against the block already
            raise HsmError(f"{a.label} and {b.label} differ after the exchange")
    return [*sent, *got]


def ceremony(pool_of: Callable[[str], HsmPool], specs: Iterable[KeySpec]) -> list[KeyInfo]:
    """Every key of ``specs``: own keys in each owner's token, shared keys exchanged."""
    out: list[KeyInfo] = []
    for spec in specs:
        if spec.peer is None:
            out.extend(pool_of(spec.owner).run_sync(ensure, [spec]))
        else:
            out.extend(share(pool_of(spec.owner), pool_of(spec.peer), spec))
    return out
