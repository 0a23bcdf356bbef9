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
    return _encrypt(AESGCM(key), plaintext, associated)


def decrypt(key: bytes, sealed: str, associated: bytes) -> bytes | None:
    """The plaintext, or None when the key or the associated data is not the one used."""
    return _decrypt(AESGCM(key), sealed, associated)


class Cipher:
    """``encrypt`` and ``decrypt`` under one key that its holder keeps for as long as this
    (the sandbox's sealing key): AES-GCM's setup for the key, about a fifth of sealing a
    short value, made once rather than per value. Never for a key derived per use (``seal``),
    which must not outlive its use."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, associated: bytes) -> str:
        return _encrypt(self._aead, plaintext, associated)

    def decrypt(self, sealed: str, associated: bytes) -> bytes | None:
        return _decrypt(self._aead, sealed, associated)


def _encrypt(aead: AESGCM, plaintext: bytes, associated: bytes) -> str:
    nonce = os.urandom(12)
    return _urlsafe_text(nonce + aead.encrypt(nonce, plaintext, associated))


def _decrypt(aead: AESGCM, sealed: str, associated: bytes) -> bytes | None:
    try:
        raw = _urlsafe_bytes(sealed)
        return aead.decrypt(raw[:12], raw[12:], associated)
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
