"""A Python client for the provider's /v1 API, in the style of the Stripe SDKs.

Standalone: imports nothing else of oidc_link's modules, so it runs in a platform's own
process with no settings, Redis or provider services.

    client = OidcLinkClient("sk_live_...", base_url="https://login.example.com")
    account = client.accounts.create(type="express", email="jenny@example.com")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from oidc_link.client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    OidcLinkError,
    RateLimitError,
)
from oidc_link.client.objects import ApiResponse, ListObject, OidcLinkObject
from oidc_link.client.resources import AccountLinks, Accounts, Events, LoginLinks
from oidc_link.client.transport import Transport
from oidc_link.client.webhooks import Event, SignatureVerificationError, Webhook

__all__ = [
    "APIConnectionError",
    "APIError",
    "ApiResponse",
    "AuthenticationError",
    "Event",
    "IdempotencyError",
    "InvalidRequestError",
    "ListObject",
    "OidcLinkClient",
    "OidcLinkError",
    "OidcLinkObject",
    "RateLimitError",
    "SignatureVerificationError",
    "Webhook",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_NETWORK_RETRIES = 2


class OidcLinkClient:
    """One platform's connection to the API, authenticated by its secret key.

    ``timeout`` bounds each attempt's connect and each read, in seconds.
    ``max_network_retries`` bounds the retries of one call after a dropped connection, a
    timeout, a 409 (same Idempotency-Key still running), a 429 or a 503; 0 turns them off.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_network_retries: int = DEFAULT_MAX_NETWORK_RETRIES,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip() or not api_key.isascii():
            raise ValueError("api_key must be the platform's secret key, 'sk_...'")
        if not api_key.isprintable() or any(character.isspace() for character in api_key):
            raise ValueError("api_key must not contain whitespace or control characters")
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_network_retries < 0:
            raise ValueError("max_network_retries must be 0 or more")
        transport = Transport(
            api_key,
            base_url,
            timeout=timeout,
            max_network_retries=max_network_retries,
            user_agent=f"oidc-link-python/{_version()}",
        )
        self.base_url = transport.base_url
        self.accounts = Accounts(transport)
        self.account_links = AccountLinks(transport)
        self.login_links = LoginLinks(transport)
        self.events = Events(transport)

    def __repr__(self) -> str:
        # Never the API key.
        return f"<OidcLinkClient base_url={self.base_url!r}>"


def _version() -> str:
    try:
        return version("oidc-link")
    except PackageNotFoundError:
        return "unknown"
