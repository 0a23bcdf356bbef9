"""Authenticated encryption (AES-GCM) for what Redis must hold but must not be able to read.

Two uses: a finished flow's redirect (it carries a code), sealed to the browser that
finished it; and private signing keys, sealed with the operator's key-encryption key.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"oidc-link sealed value v1"


def _key(browser_id: str, context: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=context.encode(), info=_INFO).derive(
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
    return base64.urlsafe_b64encode(
        nonce + AESGCM(key).encrypt(nonce, plaintext, associated)
    ).decode()


def decrypt(key: bytes, sealed: str, associated: bytes) -> bytes | None:
    """The plaintext, or None when the key or the associated data is not the one used."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return AESGCM(key).decrypt(raw[:12], raw[12:], associated)
    except (InvalidTag, ValueError):
        return None
