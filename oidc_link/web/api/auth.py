"""Who is calling /v1: the API key in ``Authorization: Bearer`` (or as HTTP Basic's user
name, as ``curl -u sk_...:`` sends it), checked against every client's key digests in
constant time, and that key's request rate."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from flask import g, request

from oidc_link.config import ClientSettings
from oidc_link.ids import digest, same
from oidc_link.web.api.errors import ApiError
from oidc_link.web.context import services

# Requests per second per API key: Stripe's default for live mode. A fixed one-second window
# in Redis, so every worker process counts together.
REQUESTS_PER_SECOND = 100


@dataclass(frozen=True)
class Caller:
    """The client whose API key signed the request, and that key's digest."""

    client: ClientSettings
    key_digest: str
    # The key itself, in memory for this request only: it seals stored idempotent replies.
    key: str

    @property
    def owner(self) -> str:
        # Clients of one owner that share a sector share their accounts (issue 6).
        return self.client.subject_sector


def caller() -> Caller:
    return g.api_caller


def presented_key() -> str:
    """The API key of ``Authorization: Bearer sk_...`` or ``Basic`` with the key as user
    name and no password (Stripe accepts both: docs.stripe.com/api/authentication)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    credentials = credentials.strip()
    key = ""
    if scheme.lower() == "bearer":
        key = credentials
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        key, _, password = decoded.partition(":")
        if password:
            # Not a secret of ours to check: a key sent as the password, or a client's
            # id and secret, would otherwise fail as an unexplained wrong key.
            raise ApiError(
                401,
                "authentication_error",
                "Send the API key as the Basic user name with an empty password "
                "('-u sk_...:').",
            )
    if not key:
        raise ApiError(
            401,
            "authentication_error",
            "You did not provide an API key: send it as 'Authorization: Bearer sk_...' "
            "(or as the Basic user name, '-u sk_...:').",
        )
    return key


def authenticate() -> None:
    """The client whose ``api_keys`` hold the presented key's digest."""
    key = presented_key()
    presented = digest(key)
    found: ClientSettings | None = None
    # Every configured hash is compared, in constant time, whatever matches first.
    for client in services().settings.clients:
        for key_hash in client.api_keys:
            if same(key_hash, presented):
                found = client
    if found is None:
        raise ApiError(401, "authentication_error", "Invalid API key provided.")
    if services().store.limits.count("api", presented, 1) > REQUESTS_PER_SECOND:
        services().metrics.rate_limited("api_requests_per_second")
        raise ApiError(
            429,
            "rate_limit_error",
            "Too many requests hit the API too quickly; retry after a short pause.",
            code="rate_limit",
        )
    g.api_caller = Caller(found, presented, key)
