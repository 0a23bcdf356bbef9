"""Values sealed to one browser: encrypted under a key derived from its binding cookie.

Used for the redirect of a just-finished flow, which carries an authorization code: Redis
holds it only encrypted, and only the browser that finished the flow can open it.
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
    nonce = os.urandom(12)
    sealed = AESGCM(_key(browser_id, context)).encrypt(nonce, value.encode(), context.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(sealed: str, browser_id: str, context: str) -> str | None:
    """The value, or None when this browser (or this context) did not seal it."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        opened = AESGCM(_key(browser_id, context)).decrypt(raw[:12], raw[12:], context.encode())
    except (InvalidTag, ValueError):
        return None
    return opened.decode()
