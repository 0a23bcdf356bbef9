"""The ``Oidc-Link-Signature`` header, signed as Stripe signs its webhooks: an HMAC-SHA256 of
``"<t>.<payload>"`` under each active secret. Verifying is the SDK's job (client/webhooks.py)."""

from __future__ import annotations

import hashlib
import hmac
import secrets as random
from collections.abc import Sequence

from oidc_link.config.webhooks import SECRET_PREFIX

SIGNATURE_HEADER = "Oidc-Link-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<payload>"`` keyed with the whole secret
    (``whsec_`` included, as Stripe keys with its whole secret)."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, payload: bytes) -> str:
    """``t=<unix>,v1=<hex>[,v1=<hex>]``: one ``v1`` per active secret, the current one first,
    so that a receiver holding either secret during a rotation accepts the delivery."""
    if not secrets:
        raise ValueError("a webhook delivery needs at least one secret")
    parts = [f"t={timestamp}"]
    parts.extend(f"{SCHEME}={signature(secret, timestamp, payload)}" for secret in secrets)
    return ",".join(parts)


def new_signing_secret() -> str:
    """A fresh secret for ``[[clients.webhooks]]``: ``whsec_`` and 256 random bits."""
    return SECRET_PREFIX + random.token_urlsafe(32)
