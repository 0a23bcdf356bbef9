"""The Link network as one interface.

make_link_client() is the only place that chooses between the sandbox and a live client.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from oidc_link.clock import Clock

if TYPE_CHECKING:
    from oidc_link.config import LinkSettings
    from oidc_link.link.sandbox import SandboxSessions


@dataclass(frozen=True)
class LookupResult:
    """What Link says about an email. ``client_secret`` must stay on our server."""

    exists: bool
    client_secret: str | None = None
    redacted_phone: str | None = None


@dataclass(frozen=True)
class VerificationStarted:
    redacted_phone: str
    # Link may rotate the session secret on any answer; the latest one must be used.
    client_secret: str


@dataclass(frozen=True)
class LinkUser:
    email: str
    name: str | None = None


class LinkErrorKind(enum.Enum):
    NOT_FOUND = "not_found"
    INVALID_CODE = "invalid_code"
    CODE_EXPIRED = "code_expired"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"


class LinkError(Exception):
    """The one error a Link client raises; ``kind`` says what the hosted page should do."""

    def __init__(self, kind: LinkErrorKind, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)


class LinkClient(Protocol):
    def lookup(self, email: str) -> LookupResult: ...

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted: ...

    def authenticate(self, email: str, client_secret: str, code: str) -> LinkUser: ...


def make_link_client(
    settings: LinkSettings,
    clock: Clock,
    announce: Callable[[str], None] | None = None,
    sandbox_sessions: SandboxSessions | None = None,
) -> LinkClient:
    """Build the client the settings ask for. ``announce`` shows sandbox codes to the
    operator; ``sandbox_sessions`` (the store) keeps the sandbox's sessions."""
    if settings.mode == "sandbox":
        from oidc_link.link.sandbox import SandboxLinkClient, print_to_console

        if sandbox_sessions is None:
            raise ValueError("the sandbox needs a table for its sessions (the store)")
        return SandboxLinkClient(
            settings.sandbox_users, clock, announce or print_to_console, sandbox_sessions
        )
    if settings.mode == "live" and settings.live is not None:
        from oidc_link.link.http import LiveLinkClient

        return LiveLinkClient(settings.live)
    # Unreachable with validated settings: config.py reports these first.
    raise ValueError(f"Link mode {settings.mode!r} is unknown or lacks its [link.live] settings")
