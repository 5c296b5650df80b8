"""Key ceremony: which keys each party needs, generated inside the token, with KCVs.

Every key is a token object, SENSITIVE, non-EXTRACTABLE, with only the capabilities its purpose
needs (table :data:`PURPOSES`), labelled ``<owner>/<purpose>/v<version>`` (see ``hsm.labels``).

Generation is atomic per key: the key is generated as a *session* object with one extra,
temporary capability used to compute its KCV, then copied to a token object with its label,
``CKA_ID`` = KCV and the temporary capability removed, and the session object destroyed. A crash
mid-way leaves no half-configured token key.

KCV (key check value, 3 bytes, not secret): AES keys: AES-CMAC of one zero block; TDES keys:
DES3-ECB of one zero block; HMAC (GENERIC_SECRET) keys: HMAC-SHA256 of one zero block (no
standard method exists; ours is documented here). Stored in ``CKA_ID``.

Shared keys (``KeySpec.peer``: zone PIN keys, the BDK the KIF holds, any issuer key shared for
stand-in): generated in the owner's token and moved to the peer's token only as a key block
(``hsm.keyblock``) under a KEK the two agreed (``hsm.exchange``). The owner's copy is extractable
only while it is a session object, for that one wrap; its token copy is non-extractable. Both
sides record the KCV; the ceremony compares them.

Issuer CVK pairs are made by ``hsm.cvv.create_cvk`` (two objects, ``cvk`` = K_A||K_B and
``cvk-a`` = K_A||K_A, derived together in the HSM because SoftHSM has no usable single DES); the
ceremony calls it and then records both KCVs.

Vault keys are versioned. Status is enforced by the token itself through capability flags:
``active`` (ENCRYPT+DECRYPT, the highest version), ``decrypt-only`` (after a rotation), and
``retired`` (neither; the object is kept so the label is never reused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from hsm import labels as L
from hsm.config import KIF
from hsm.errors import HsmError, KeyNotFound, TemplateError
from hsm.pool import forget_key, get_key
from hsm.templates import secret_key_template, validate

ENC, DEC, SIGN, VERIFY, DERIVE = (
    Attribute.ENCRYPT,
    Attribute.DECRYPT,
    Attribute.SIGN,
    Attribute.VERIFY,
    Attribute.DERIVE,
)


@dataclass(frozen=True, slots=True)
class Purpose:
    key_type: KeyType
    bits: int
    capabilities: frozenset[Attribute]
    versioned: bool = False
    note: str = ""


PURPOSES: dict[str, Purpose] = {
    L.BDK: Purpose(KeyType.AES, 128, frozenset({DERIVE}), note="AES-DUKPT BDK (X9.24-3)"),
    L.TOKENIZATION: Purpose(
        KeyType.GENERIC_SECRET, 256, frozenset({SIGN, VERIFY}), note="PAN tokens"
    ),
    L.FINGERPRINT: Purpose(
        KeyType.GENERIC_SECRET, 256, frozenset({SIGN, VERIFY}), note="request fingerprints"
    ),
    L.VAULT: Purpose(KeyType.AES, 256, frozenset({ENC, DEC}), versioned=True, note="PAN vault"),
    L.ZPK: Purpose(KeyType.AES, 128, frozenset({ENC, DEC}), note="zone PIN key"),
    L.CVK: Purpose(KeyType.DES2, 128, frozenset({ENC}), note="CVK pair K_A||K_B"),
    L.CVK_A: Purpose(KeyType.DES2, 128, frozenset({ENC}), note="CVK K_A||K_A"),
    L.IMK_AC: Purpose(KeyType.DES2, 128, frozenset({DERIVE}), note="EMV IMK-AC"),
    L.PVK: Purpose(KeyType.AES, 256, frozenset({SIGN}), note="PIN verification (PVV)"),
    L.KEK: Purpose(KeyType.AES, 256, frozenset({DERIVE}), note="key block protection key"),
    L.STIP: Purpose(
        KeyType.GENERIC_SECRET, 256, frozenset({SIGN, VERIFY}), note="stand-in file MAC, digests"
    ),
}

# What an issuer shares with the switch for stand-in processing, as card networks' stand-in
# gets it from issuers: CVV, PIN and ARQC verification keys, and its stand-in file's MAC key.
STANDIN_SHARED = (L.CVK, L.IMK_AC, L.PVK, L.STIP)


def purpose_of(purpose_name: str) -> Purpose:
    """``<base>.<peer>`` (``zpk.acq-alpha``, ``bdk.switch``) maps to the base's entry."""
    base = purpose_name.split(".", 1)[0]
    try:
        return PURPOSES[base]
    except KeyError:
        raise ValueError(f"unknown key purpose {purpose_name!r}") from None


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One key family the ceremony must provide. ``peer``: also sent, as a key block, to the
    peer's token, labelled there ``<peer>/<base>.<owner>``."""

    owner: str
    purpose: str
    peer: str | None = None

    @property
    def family(self) -> str:
        return f"{self.owner}/{self.purpose}"

    def peer_purpose(self) -> str:
        assert self.peer is not None
        return L.shared(self.purpose, self.owner)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the ceremony reports about a key. Never holds key material."""

    label: str
    key_type: str
    bits: int
    kcv: str
    status: str
    capabilities: tuple[str, ...]
    created: bool = False

    def line(self) -> str:
        caps = ",".join(self.capabilities) or "-"
        mark = "new" if self.created else "   "
        return (
            f"{mark} {self.label:<40} {self.key_type:<14} {self.bits:>3}  KCV {self.kcv}  "
            f"{self.status:<12} {caps}"
        )


def parties(topology: Any) -> list[str]:
    """Every party that holds keys, so has a token: the switch, the KIF, acquirers, issuers."""
    return [L.SWITCH, KIF, *(a.id for a in topology.acquirers), *(i.id for i in topology.issuers)]


def plan(topology: Any) -> list[KeySpec]:
    """Key families for the switch, every acquirer and every issuer of ``topology``."""
    specs = [KeySpec(L.SWITCH, p) for p in (L.TOKENIZATION, L.FINGERPRINT, L.VAULT)]
    specs.append(KeySpec(L.SWITCH, L.BDK, peer=KIF))  # the KIF injects terminals from its copy
    for acq in topology.acquirers:
        specs.append(KeySpec(L.SWITCH, L.zpk(L.SWITCH, acq.id), peer=acq.id))
    for acq in topology.acquirers:
        for iss in topology.issuers:
            specs.append(KeySpec(acq.id, L.zpk(acq.id, iss.id), peer=iss.id))
    for iss in topology.issuers:
        specs.extend(KeySpec(iss.id, p, peer=L.SWITCH) for p in STANDIN_SHARED)
    return specs


# --- KCV -------------------------------------------------------------------------------------


def kcv_capability(key_type: KeyType) -> Attribute:
    return ENC if key_type in (KeyType.DES2, KeyType.DES3) else SIGN


def compute_kcv(key: Any, key_type: KeyType) -> bytes:
    """3-byte KCV computed in the HSM (needs SIGN for AES/HMAC, ENCRYPT for TDES)."""
    out: bytes
    if key_type == KeyType.AES:
        out = key.sign(bytes(16), mechanism=Mechanism.AES_CMAC)
        return out[:3]
    if key_type in (KeyType.DES2, KeyType.DES3):
        out = key.encrypt(bytes(8), mechanism=Mechanism.DES3_ECB)
        return out[:3]
    if key_type == KeyType.GENERIC_SECRET:
        out = key.sign(bytes(16), mechanism=Mechanism.SHA256_HMAC)
        return out[:3]
    raise HsmError(f"no KCV method for key type {key_type.name}")


# --- inspection ------------------------------------------------------------------------------

_CAP_NAMES = (("E", ENC), ("D", DEC), ("S", SIGN), ("V", VERIFY), ("X", DERIVE))


def _status(key: Any, purpose: Purpose) -> str:
    if not purpose.versioned:
        return "active"
    enc, dec = bool(key[ENC]), bool(key[DEC])
    if enc and dec:
        return "active"
    if dec:
        return "decrypt-only"
    return "retired"


def describe(key: Any) -> KeyInfo:
    label = key[Attribute.LABEL]
    parsed = L.parse(label)
    purpose = purpose_of(parsed.purpose)
    caps = tuple(name for name, attr in _CAP_NAMES if bool(key[attr]))
    kt = key.key_type
    bits = int(key[Attribute.VALUE_LEN]) * 8 if kt not in (KeyType.DES2, KeyType.DES3) else 128
    bits = bits or purpose.bits  # SoftHSM leaves VALUE_LEN 0 on unwrapped keys
    kcv = bytes(key[Attribute.ID])
    if len(kcv) != 3 and bool(key[kcv_capability(kt)]):
        kcv = compute_kcv(key, kt)
    return KeyInfo(
        label=label,
        key_type=kt.name,
        bits=bits,
        kcv=kcv.hex().upper() if len(kcv) == 3 else "?",
        status=_status(key, purpose),
        capabilities=caps,
    )


def _token_keys(session: Any) -> list[Any]:
    return list(
        session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True})
    )


def list_keys(session: Any) -> list[KeyInfo]:
    """Every labelled secret key on the token, sorted by label."""
    out = []
    for key in _token_keys(session):
        try:
            out.append(describe(key))
        except ValueError:
            continue  # not one of ours (foreign label)
    return sorted(out, key=lambda k: L.parse(k.label))


def versions(session: Any, owner: str, purpose: str) -> dict[int, Any]:
    """version -> key object for ``owner/purpose`` (token objects)."""
    prefix = f"{owner}/{purpose}/v"
    found: dict[int, Any] = {}
    for key in _token_keys(session):
        lab = key[Attribute.LABEL]
        if lab.startswith(prefix):
            try:
                found[L.parse(lab).version] = key
            except ValueError:
                continue
    return found


def _find(session: Any, label: str) -> Any | None:
    try:
        return get_key(session, label)
    except KeyNotFound:
        return None


# --- generation ------------------------------------------------------------------------------


def generate(
    session: Any,
    owner: str,
    purpose_name: str,
    version: int,
    *,
    export: Callable[[Any, bytes], None] | None = None,
) -> KeyInfo:
    """Generate one token key ``owner/purpose/v<version>`` inside the HSM; return its info.

    ``export(session_key, kcv)``, when given, is called once with the new key while it is still
    a session object that may be wrapped (EXTRACTABLE, SENSITIVE): the one moment a shared key
    can leave, as a key block. The token copy is non-extractable whatever happens.
    """
    purpose = purpose_of(purpose_name)
    label = L.label(owner, purpose_name, version)
    if _find(session, label) is not None:
        raise HsmError(f"{label} already exists")
    temp_cap = kcv_capability(purpose.key_type)
    extra = {Attribute.EXTRACTABLE: True} if export is not None else None
    tmp_tpl = secret_key_template(
        token=False, capabilities=purpose.capabilities | {temp_cap}, extra=extra
    )
    key_len = None if purpose.key_type in (KeyType.DES2, KeyType.DES3) else purpose.bits
    tmp = session.generate_key(
        purpose.key_type,
        key_len,
        store=False,
        capabilities=pkcs11.MechanismFlag(0),
        template=tmp_tpl,
    )
    try:
        kcv = compute_kcv(tmp, purpose.key_type)
        if export is not None:
            export(tmp, kcv)
        return keep(session, tmp, label, purpose_name, kcv=kcv)
    finally:
        tmp.destroy()


def keep(
    session: Any, tmp: Any, label: str, purpose_name: str, *, kcv: bytes | None = None
) -> KeyInfo:
    """Store session key ``tmp`` (holding the purpose's capabilities plus the KCV one) as the
    locked-down token key ``label``, its KCV in CKA_ID; ``kcv``, when given, must match."""
    purpose = purpose_of(purpose_name)
    if _find(session, label) is not None:
        raise HsmError(f"{label} already exists")
    temp_cap = kcv_capability(purpose.key_type)
    mine = compute_kcv(tmp, purpose.key_type)
    if kcv is not None and mine != kcv:
        raise HsmError(f"{label}: KCV {mine.hex().upper()} is not the expected {kcv.hex().upper()}")
    final = validate(
        {
            Attribute.TOKEN: True,
            Attribute.LABEL: label,
            Attribute.ID: mine,
            temp_cap: temp_cap in purpose.capabilities,
        }
    )
    if tmp[Attribute.EXTRACTABLE]:
        final[Attribute.EXTRACTABLE] = False  # PKCS#11 lets it go true -> false only
    key = tmp.copy(final)
    _check_policy(key, purpose)
    return _created(describe(key))


def _created(info: KeyInfo) -> KeyInfo:
    return replace(info, created=True)


def _check_policy(key: Any, purpose: Purpose) -> None:
    """Read back what the token stored: refuse a key that is not locked down."""
    if not key[Attribute.SENSITIVE] or key[Attribute.EXTRACTABLE] or not key[Attribute.TOKEN]:
        raise TemplateError(f"{key[Attribute.LABEL]}: token did not honour SENSITIVE/EXTRACTABLE")
    for _, attr in _CAP_NAMES:
        want = attr in purpose.capabilities
        if bool(key[attr]) != want and not (purpose.versioned and attr in (ENC, DEC)):
            raise TemplateError(f"{key[Attribute.LABEL]}: capability {attr.name} is {not want}")


def ensure(session: Any, specs: Iterable[KeySpec]) -> list[KeyInfo]:
    """Create whatever is missing of one party's own keys (idempotent); return info for each.

    Shared keys (``spec.peer``) involve two tokens: ``hsm.exchange.ceremony`` makes them."""
    out: list[KeyInfo] = []
    for spec in specs:
        purpose = purpose_of(spec.purpose)
        if purpose.versioned:
            have = versions(session, spec.owner, spec.purpose)
            if have:
                out.extend(describe(have[v]) for v in sorted(have))
            else:
                out.append(generate(session, spec.owner, spec.purpose, 1))
            continue
        own_label = L.label(spec.owner, spec.purpose, 1)
        own = _find(session, own_label)
        if spec.purpose == L.CVK and spec.peer is None:
            out.extend(_ensure_cvk(session, spec.owner, own))
            continue
        if spec.peer is None:
            out.append(
                describe(own) if own is not None else generate(session, spec.owner, spec.purpose, 1)
            )
            continue
        raise HsmError(f"{spec.family} is shared with {spec.peer}: hsm.exchange makes it")
    return out


def _ensure_cvk(session: Any, owner: str, pair: Any | None) -> list[KeyInfo]:
    """The issuer CVK pair through ``hsm.cvv.create_cvk``; KCVs recorded in CKA_ID."""
    left_label = L.label(owner, L.CVK_A, 1)
    if pair is not None:
        left = _find(session, left_label)
        if left is None:
            raise HsmError(f"{owner}/cvk/v1 exists without {left_label}; re-run the ceremony")
        return [describe(pair), describe(left)]
    from hsm.cvv import create_cvk  # issuer-side module; imported only for the ceremony

    made = create_cvk(session, owner, 1)
    out = []
    for key in (made.pair, made.left):
        key[Attribute.ID] = compute_kcv(key, KeyType.DES2)
        _check_policy(key, PURPOSES[L.CVK])
        out.append(_created(describe(key)))
    return out


# --- versions: rotate, retire ----------------------------------------------------------------


def rotate(session: Any, owner: str, purpose_name: str) -> KeyInfo:
    """New version for new encryptions; older active versions become decrypt-only."""
    purpose = purpose_of(purpose_name)
    if not purpose.versioned:
        raise HsmError(f"{owner}/{purpose_name} is not a versioned key")
    have = versions(session, owner, purpose_name)
    new_version = max(have, default=0) + 1
    info = generate(session, owner, purpose_name, new_version)
    for v, key in have.items():
        if bool(key[ENC]):
            key[ENC] = False
            forget_key(session, L.label(owner, purpose_name, v))
    return info


def retire(session: Any, label: str) -> KeyInfo:
    """Disable a version for encryption and decryption; the current version cannot be retired."""
    parsed = L.parse(label)
    purpose = purpose_of(parsed.purpose)
    if not purpose.versioned:
        raise HsmError(f"{label} is not a versioned key")
    have = versions(session, parsed.owner, parsed.purpose)
    if parsed.version not in have:
        raise KeyNotFound(f"no key labelled {label!r}")
    if parsed.version == max(have):
        raise HsmError(f"{label} is the current version; rotate first")
    key = have[parsed.version]
    key[ENC] = False
    key[DEC] = False
    forget_key(session, label)
    return describe(key)


def current_version(session: Any, owner: str, purpose_name: str) -> int:
    """Highest version whose key may still encrypt."""
    have = versions(session, owner, purpose_name)
    active = [v for v, k in have.items() if bool(k[ENC])]
    if not active:
        raise KeyNotFound(f"no active version of {owner}/{purpose_name}")
    return max(active)
