"""Checking a webhook delivery on the receiving side, as Stripe's SDKs do: the
``Oidc-Link-Signature`` header against the raw body and the endpoint's secret, then the event.
Standalone like the rest of the SDK: the provider signs in oidc_link/webhooks/signature.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from oidc_link.client.errors import OidcLinkError
from oidc_link.client.objects import OidcLinkObject, convert

SIGNATURE_HEADER = "Oidc-Link-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300
# A header longer than this is not one we sent (a few signatures of 64 hex characters).
MAX_HEADER_LENGTH = 4096


class SignatureVerificationError(OidcLinkError):
    """The delivery is not proven to come from the provider: the header is missing or
    garbled, no signature matches the secret, or its timestamp is outside the tolerance.
    Answer 400 and do not act on the body. ``header`` is the header as received."""

    def __init__(self, message: str, header: str | None, payload: bytes | str | None = None):
        super().__init__(message)
        self.header = header
        self.payload = payload


class Event(OidcLinkObject):
    """An event (``{"id": "evt_...", "object": "event", "type", "created", "data"}``)."""


class Webhook:
    """``Webhook.construct_event(request.get_data(), request.headers["Oidc-Link-Signature"],
    "whsec_...")``: the verified event, or SignatureVerificationError."""

    @staticmethod
    def construct_event(
        payload: bytes | str,
        header: str | None,
        secret: str,
        tolerance: int = DEFAULT_TOLERANCE,
        *,
        now: int | None = None,
    ) -> Event:
        """Verify, then parse. ``payload`` must be the body exactly as received (parsing
        and re-encoding it changes the bytes the signature covers). ``tolerance``: seconds
        the signature's timestamp may differ from ``now`` (this machine's clock unless
        given), either way, to refuse replays of an old delivery."""
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        verify_header(raw, header, secret, tolerance, now=now)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise ValueError("the webhook payload is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the webhook payload is not a JSON object")
        return Event(convert(data))


def verify_header(
    payload: bytes,
    header: str | None,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: int | None = None,
) -> None:
    """Returns when some ``v1`` signature in ``header`` is the HMAC of ``payload`` under
    ``secret`` and its timestamp is within ``tolerance``; raises otherwise."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("secret must be the endpoint's signing secret, 'whsec_...'")
    if tolerance < 0:
        raise ValueError("tolerance must be 0 (no time check) or a number of seconds")
    timestamp, signatures = _parsed(header, payload)
    expected = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256
    ).hexdigest()
    # Compare with every signature, in constant time each: during a rotation the header
    # carries one per secret, and which one matches tells an observer nothing.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode(errors="replace"))
    if not matched:
        raise SignatureVerificationError(
            "No signature in the header matches the payload and this secret. Check that the "
            "secret is this endpoint's and that the body is passed exactly as received.",
            header,
            payload,
        )
    current = int(time.time()) if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        raise SignatureVerificationError(
            f"The signature's timestamp is {abs(current - timestamp)} s from this machine's "
            f"clock, more than the tolerance of {tolerance} s: a replayed or delayed delivery, "
            "or a clock that is wrong.",
            header,
            payload,
        )


def _parsed(header: str | None, payload: bytes) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures; other schemes are ignored, as Stripe does."""
    if not header or not isinstance(header, str):
        raise SignatureVerificationError(
            f"The {SIGNATURE_HEADER} header is missing.", header, payload
        )
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureVerificationError(
            f"The {SIGNATURE_HEADER} header is too long to be a signature.", header, payload
        )
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, equals, value = item.strip().partition("=")
        if not equals:
            continue
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not timestamps[0].isascii():
        raise SignatureVerificationError(
            f"The {SIGNATURE_HEADER} header has no valid timestamp (t=<unix seconds>).",
            header,
            payload,
        )
    if not signatures:
        raise SignatureVerificationError(
            f"The {SIGNATURE_HEADER} header has no {SCHEME} signature.", header, payload
        )
    return int(timestamps[0]), signatures
