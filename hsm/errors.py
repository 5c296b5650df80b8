"""Typed HSM errors, so callers can tell "decline this request" from "fail closed".

Messages name labels, mechanisms and PKCS#11 return-code class names only: never key material,
PINs, PANs or plaintext.
"""

from __future__ import annotations


class HsmError(Exception):
    """Base class for everything raised by ``hsm``."""


class HsmUnavailable(HsmError):
    """The HSM cannot serve: token missing, login failed, device or session error.

    Callers must fail closed (decline 96/91 or queue), never approve blind.
    """


class HsmBusy(HsmUnavailable):
    """Too many jobs queued for the single HSM thread; shed load instead of queueing past the
    request's deadline."""


class KeyNotFound(HsmError):
    """No key object with this label (the ceremony has not created it, or it was retired)."""


class TemplateError(HsmError, ValueError):
    """A PKCS#11 attribute template failed validation before reaching the C library.

    python-pkcs11 segfaults on some unpackable values, so templates are checked first.
    """


class IntegrityError(HsmError):
    """Authenticated data failed its check (bad MAC, bad GCM tag, bad padding).

    The request is refused; this is not an HSM outage.
    """


class KeyRetired(HsmError):
    """The key version exists but has been retired (may no longer be used for this)."""
