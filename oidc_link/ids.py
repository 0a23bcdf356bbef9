"""Identifiers and secrets: random values, their digests and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random value for bearer secrets (codes, tokens, flow ids)."""
    return secrets.token_urlsafe(nbytes)


def new_id(prefix: str, nbytes: int = 12) -> str:
    """A prefixed random id such as ``flow_3kT...``; the prefix says what it names."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def digest(secret: str) -> str:
    """SHA-256 hex digest: bearer secrets are stored and looked up under this, never raw."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time equality for secrets."""
    return hmac.compare_digest(a.encode(), b.encode())
