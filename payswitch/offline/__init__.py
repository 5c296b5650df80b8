"""Offline payments (issue 13): what the issuer, the payer device, the terminal and the switch
agree on, so that a sale approved with no connectivity can be settled later and every double
spend caught and attributed.

- ``formats``: the signed allowance and the signed spend, their canonical bytes (version 1),
  the hash chain of spends;
- ``ecdsa``: ECDSA P-256 over SHA-256, signatures as 64 bytes r || s, public keys as 65-byte
  uncompressed points (verification only needs ``cryptography``; signing happens in a PKCS#11
  token: the issuer's HSM or the device's secure element);
- ``checks``: the one set of rules both the terminal (at the sale) and the switch (at
  settlement) apply to an (allowance, spend) pair.

``docs/terminal-protocol.md`` ("Offline payments") writes the formats out for implementers and
``docs/vectors/offline-v1.json`` holds test vectors.
"""
