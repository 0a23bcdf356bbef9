"""Identifiers and secrets: random values, their digests and constant-time comparison."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os

# base64's URL-safe alphabet from the standard one, as base64.urlsafe_b64encode maps it.
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def url_safe_text(raw: bytes) -> str:
    """``raw`` in unpadded URL-safe base64: what ``secrets.token_urlsafe`` makes of its random
    bytes, in one expression instead of its four calls through ``base64`` (a sign-in makes
    about twenty ids and secrets)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URL_SAFE).rstrip(b"=").decode()


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random value for bearer secrets (codes, tokens, flow ids): ``nbytes`` from
    the operating system's CSPRNG (``os.urandom``, what ``secrets`` reads too)."""
    return url_safe_text(os.urandom(nbytes))


def new_id(prefix: str, nbytes: int = 12) -> str:
    """A prefixed random id such as ``flow_3kT...``; the prefix says what it names."""
    return f"{prefix}_{url_safe_text(os.urandom(nbytes))}"


def digest(secret: str) -> str:
    """SHA-256 hex digest: bearer secrets are stored and looked up under this, never raw."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time equality for secrets."""
    return hmac.compare_digest(a.encode(), b.encode())
