"""The sandbox Link network: test users from config, codes shown on the console, magic codes.

Like Stripe's test mode, it never sends an SMS. Its sessions live in a SandboxSessions table
(the store: Redis, with TTLs), so any worker or instance can take any step of a sign-in;
production settings refuse the sandbox altogether.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from oidc_link.clock import Clock
from oidc_link.config import SandboxUser
from oidc_link.link import (
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)

# Codes that behave the same for every sandbox user, so tests and demos can take each branch.
MAGIC_CODES = {
    "000000": None,  # accepted
    "000001": LinkErrorKind.INVALID_CODE,
    "000002": LinkErrorKind.CODE_EXPIRED,
    "000003": LinkErrorKind.TOO_MANY_ATTEMPTS,
    "000004": LinkErrorKind.RATE_LIMITED,
    "000005": LinkErrorKind.UNAVAILABLE,
}
# Emails whose local part makes Link refuse the lookup, at any domain, so the pages for a
# busy or unreachable Link can be seen (interaction/rate_limits.py rehearses our own limits).
MAGIC_LOOKUPS = {
    "link-rate-limited": LinkErrorKind.RATE_LIMITED,
    "link-unavailable": LinkErrorKind.UNAVAILABLE,
}
CODE_LIFETIME = 600
# A session outlives any code sent in it, and any sign-in flow (lifetimes.flow, 600 s).
SESSION_LIFETIME = 3600
MAX_ATTEMPTS = 5

# What checking a code did to its session (SandboxSessions.try_code).
CodeOutcome = Literal["accepted", "wrong", "locked", "expired", "unknown"]


class SandboxSessions(Protocol):
    """The sandbox's session table, shared by every worker and instance. Sessions are
    keyed by their client secret (a bearer secret: store it hashed) and each change is
    atomic, so two workers never both accept one code or lose a wrong attempt."""

    def open(self, secret: str, email: str, ttl: int) -> None:
        """A new session for ``email``, living ``ttl`` seconds."""
        ...

    def email(self, secret: str) -> str | None:
        """The email of a live session; None when it is unknown, finished or expired."""
        ...

    def issue_code(self, secret: str, email: str, code: str, expires_at: int) -> bool:
        """Replace the session's code (wrong attempts start again); False when the session
        is not ``email``'s live session."""
        ...

    def try_code(
        self, secret: str, email: str, code: str | None, now: int, max_attempts: int
    ) -> CodeOutcome:
        """Check ``code`` (None: accept any) and, in the same atomic step, end the session
        when it is accepted or when this was the ``max_attempts``-th wrong one."""
        ...


def print_to_console(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def redact_phone(phone: str) -> str:
    """Show the country prefix and last two digits, as Link does: ``+1********23``."""
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:]


class SandboxLinkClient:
    def __init__(
        self,
        users: Iterable[SandboxUser],
        clock: Clock,
        announce: Callable[[str], None],
        sessions: SandboxSessions,
    ) -> None:
        self._users = {user.email.lower(): user for user in users}
        self._clock = clock
        self._announce = announce
        self._sessions = sessions

    def lookup(self, email: str) -> LookupResult:
        email = email.strip().lower()
        refusal = MAGIC_LOOKUPS.get(email.partition("@")[0])
        if refusal is not None:
            raise LinkError(refusal, "sandbox magic email")
        user = self._users.get(email)
        if user is None:
            return LookupResult(exists=False)
        client_secret = "sandbox_cs_" + secrets.token_urlsafe(24)
        # Sessions hold the normalised email, the key of self._users, so that users
        # configured in mixed case still match the lookups below.
        self._sessions.open(client_secret, user.email.lower(), SESSION_LIFETIME)
        return LookupResult(
            exists=True, client_secret=client_secret, redacted_phone=redact_phone(user.phone)
        )

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        email = email.strip().lower()
        code = f"{secrets.randbelow(1_000_000):06d}"
        expires_at = self._clock.now() + CODE_LIFETIME
        if email not in self._users or not self._sessions.issue_code(
            client_secret, email, code, expires_at
        ):
            raise _unknown_session()
        user = self._users[email]
        self._announce(f"[sandbox] Link verification code for {user.email}: {code}")
        return VerificationStarted(
            redacted_phone=redact_phone(user.phone), client_secret=client_secret
        )

    def authenticate(self, email: str, client_secret: str, code: str) -> LinkUser:
        email = email.strip().lower()
        magic = code in MAGIC_CODES
        refusal = MAGIC_CODES.get(code)
        if refusal is not None:
            if self._sessions.email(client_secret) != email:
                raise _unknown_session()
            raise LinkError(refusal, "sandbox magic code")
        outcome = self._sessions.try_code(
            client_secret, email, None if magic else code, self._clock.now(), MAX_ATTEMPTS
        )
        if outcome == "unknown":
            raise _unknown_session()
        if outcome == "expired":
            raise LinkError(LinkErrorKind.CODE_EXPIRED)
        if outcome == "locked":
            raise LinkError(LinkErrorKind.TOO_MANY_ATTEMPTS)
        if outcome == "wrong":
            raise LinkError(LinkErrorKind.INVALID_CODE)
        user = self._users[email]
        return LinkUser(email=user.email, name=user.name)


def _unknown_session() -> LinkError:
    return LinkError(LinkErrorKind.CODE_EXPIRED, "unknown or finished sandbox session")
