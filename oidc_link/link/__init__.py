"""The Link network as one interface: the LinkClient protocol, its answers and LinkError.

Nothing here knows a client; link/switch.py picks the sandbox or the live one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol


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
    # What names the session and may travel in the code page's form (no secret: it opens
    # nothing), for ``check_ahead``; None: the client reads nothing ahead (the live Link).
    session_hint: str | None = None


@dataclass(frozen=True)
class LinkUser:
    email: str
    name: str | None = None
    # The city of the Link account, when Link tells it: the ``address`` claim's locality.
    city: str | None = None


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


class CheckAhead(Protocol):
    """A client's own state for one code check, read in the round trip that locks the flow
    and written in the one that releases it (each a store rider: ``queue`` the commands,
    ``answer`` their results), so that the check costs no round trip of its own."""

    def queue(self, pipeline: Any) -> int: ...

    def answer(self, results: list[Any]) -> None: ...

    def after(self) -> Any:
        """What the check changed, a rider for the release (None: nothing)."""
        ...


class LinkClient(Protocol):
    def lookup(self, email: str) -> LookupResult: ...

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted: ...

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        """The state a check of the session ``session_hint`` names will need (a
        VerificationStarted's), to read under the flow's lock; None: nothing to read."""
        ...

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        """``ahead``: ``check_ahead``'s, read under the flow's lock in this very step."""
        ...
