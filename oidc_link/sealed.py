"""Authenticated encryption (AES-GCM) for what Redis must hold but must not be able to read.

Two uses: a finished flow's redirect (it carries a code), sealed to the browser that
finished it; and private signing keys, sealed with the operator's key-encryption key.
"""

from __future__ import annotations

import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"oidc-link sealed value v1"
# The hash HKDF uses: a description of the algorithm, no state, so one serves every call.
_SHA256 = hashes.SHA256()
# base64's URL-safe alphabet to and from the standard one, as base64.urlsafe_b64* map it.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _key(browser_id: str, context: str) -> bytes:
    return HKDF(algorithm=_SHA256, length=32, salt=context.encode(), info=_INFO).derive(
        browser_id.encode()
    )


def seal(value: str, browser_id: str, context: str) -> str:
    """Encrypt ``value`` for ``browser_id``; ``context`` (a flow id) binds it to one use."""
    return encrypt(_key(browser_id, context), value.encode(), context.encode())


def unseal(sealed: str, browser_id: str, context: str) -> str | None:
    """The value, or None when this browser (or this context) did not seal it."""
    opened = decrypt(_key(browser_id, context), sealed, context.encode())
    return opened.decode() if opened is not None else None


def encrypt(key: bytes, plaintext: bytes, associated: bytes) -> str:
    """AES-GCM with a fresh nonce; ``associated`` data must match to decrypt."""
    nonce = os.urandom(12)
    return _urlsafe_text(nonce + AESGCM(key).encrypt(nonce, plaintext, associated))


def decrypt(key: bytes, sealed: str, associated: bytes) -> bytes | None:
    """The plaintext, or None when the key or the associated data is not the one used."""
    try:
        raw = _urlsafe_bytes(sealed)
        return AESGCM(key).decrypt(raw[:12], raw[12:], associated)
    except (InvalidTag, ValueError):
        return None


def _urlsafe_text(raw: bytes) -> str:
    """``base64.urlsafe_b64encode(raw).decode()``: binascii's encoder and the alphabet's
    mapping, without base64's two Python calls around them."""
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).decode()


def _urlsafe_bytes(text: str) -> bytes:
    """``base64.urlsafe_b64decode(text.encode())``, the same way (non-alphabet characters
    skipped, bad padding a ``binascii.Error``, which is a ValueError)."""
    return binascii.a2b_base64(text.encode().translate(_FROM_URLSAFE))
