"""Validation of PKCS#11 attribute templates before they reach python-pkcs11.

python-pkcs11 packs a template in C and, when a value cannot be packed (a non-str LABEL, an
attribute it has no packer for such as CKA_DERIVE_TEMPLATE), frees uninitialised pointers and
crashes the process. So every template this package builds passes :func:`validate` first: known
attribute, value of exactly the Python type its packer expects, and a dry-run pack.

:func:`secret_key_template` is the one place secret-key policy is written down: sensitive,
non-extractable, private, and only the capabilities asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import IntEnum
from typing import Any

from pkcs11 import Attribute
from pkcs11.attributes import (
    ATTRIBUTE_TYPES,
    handle_biginteger,
    handle_bool,
    handle_bytes,
    handle_date,
    handle_str,
    handle_ulong,
)

from hsm.errors import TemplateError

_CAPABILITIES = (
    Attribute.ENCRYPT,
    Attribute.DECRYPT,
    Attribute.SIGN,
    Attribute.VERIFY,
    Attribute.WRAP,
    Attribute.UNWRAP,
    Attribute.DERIVE,
)


def _expected(handler: Any) -> tuple[type, ...]:
    if handler is handle_bool:
        return (bool,)
    if handler is handle_str:
        return (str,)
    if handler in (handle_bytes, handle_biginteger):
        return (bytes,)
    if handler is handle_date:
        return (date,)
    if handler is handle_ulong:
        return (int,)
    return (IntEnum,)  # the _enum(...) packers


def validate(template: Mapping[Attribute, Any]) -> dict[Attribute, Any]:
    """Return a plain dict copy of ``template`` or raise :class:`TemplateError`.

    Errors name the attribute and the offending type, never the value (it may be a key).
    """
    out: dict[Attribute, Any] = {}
    for attr, value in template.items():
        if not isinstance(attr, Attribute):
            raise TemplateError(f"template key {attr!r} is not a pkcs11.Attribute")
        handler = ATTRIBUTE_TYPES.get(attr)
        if handler is None:
            raise TemplateError(f"attribute {attr.name} has no packer in python-pkcs11")
        allowed = _expected(handler)
        if isinstance(value, bool) and bool not in allowed:
            raise TemplateError(f"attribute {attr.name}: bool given where {allowed} expected")
        if not isinstance(value, allowed):
            raise TemplateError(
                f"attribute {attr.name}: {type(value).__name__} given where "
                f"{'/'.join(t.__name__ for t in allowed)} expected"
            )
        try:
            handler[0](value)
        except Exception as exc:  # any packer failure would crash inside the C layer
            raise TemplateError(f"attribute {attr.name}: value cannot be packed") from exc
        out[attr] = value
    return out


def secret_key_template(
    *,
    label: str | None = None,
    token: bool,
    capabilities: frozenset[Attribute] | set[Attribute],
    extra: Mapping[Attribute, Any] | None = None,
) -> dict[Attribute, Any]:
    """Template for a secret key: sensitive, non-extractable, private, least capability.

    Every capability attribute is set explicitly (True only for those in ``capabilities``), so a
    library default can never grant one silently.
    """
    unknown = set(capabilities) - set(_CAPABILITIES)
    if unknown:
        raise TemplateError(f"not a capability attribute: {sorted(a.name for a in unknown)}")
    tpl: dict[Attribute, Any] = {
        Attribute.TOKEN: token,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    if label is not None:
        tpl[Attribute.LABEL] = label
    for cap in _CAPABILITIES:
        tpl[cap] = cap in capabilities
    if extra:
        tpl.update(extra)
    if tpl[Attribute.SENSITIVE] is not True:
        raise TemplateError("secret keys must be SENSITIVE")
    return validate(tpl)
