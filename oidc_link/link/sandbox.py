"""The sandbox Link network: test users from config, codes shown on the console, magic codes.

Like Stripe's test mode, it never sends an SMS. Its sessions live in this process, which is
what a demo or a test needs; production settings refuse the sandbox altogether.
"""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config import SandboxUser
from oidc_link.ids import same
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
}
CODE_LIFETIME = 600
MAX_ATTEMPTS = 5


def print_to_console(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def redact_phone(phone: str) -> str:
    """Show the country prefix and last two digits, as Link does: ``+1********23``."""
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:]


@dataclass
class _Session:
    email: str
    code: str | None = None
    code_expires_at: int = 0
    wrong_attempts: int = 0


class SandboxLinkClient:
    def __init__(
        self, users: Iterable[SandboxUser], clock: Clock, announce: Callable[[str], None]
    ) -> None:
        self._users = {user.email.lower(): user for user in users}
        self._clock = clock
        self._announce = announce
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def lookup(self, email: str) -> LookupResult:
        user = self._users.get(email.strip().lower())
        if user is None:
            return LookupResult(exists=False)
        client_secret = "sandbox_cs_" + secrets.token_urlsafe(24)
        with self._lock:
            # Sessions hold the normalised email, the key of self._users, so that users
            # configured in mixed case still match _session() and the lookups below.
            self._sessions[client_secret] = _Session(email=user.email.lower())
        return LookupResult(
            exists=True, client_secret=client_secret, redacted_phone=redact_phone(user.phone)
        )

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        code = f"{secrets.randbelow(1_000_000):06d}"
        with self._lock:
            session = self._session(email, client_secret)
            session.code = code
            session.code_expires_at = self._clock.now() + CODE_LIFETIME
            session.wrong_attempts = 0
        user = self._users[session.email]
        self._announce(f"[sandbox] Link verification code for {user.email}: {code}")
        return VerificationStarted(
            redacted_phone=redact_phone(user.phone), client_secret=client_secret
        )

    def authenticate(self, email: str, client_secret: str, code: str) -> LinkUser:
        with self._lock:
            session = self._session(email, client_secret)
            if code in MAGIC_CODES:
                outcome = MAGIC_CODES[code]
                if outcome is not None:
                    raise LinkError(outcome, "sandbox magic code")
            elif session.code is None or self._clock.now() >= session.code_expires_at:
                raise LinkError(LinkErrorKind.CODE_EXPIRED)
            elif not same(code, session.code):
                session.wrong_attempts += 1
                if session.wrong_attempts >= MAX_ATTEMPTS:
                    del self._sessions[client_secret]
                    raise LinkError(LinkErrorKind.TOO_MANY_ATTEMPTS)
                raise LinkError(LinkErrorKind.INVALID_CODE)
            del self._sessions[client_secret]
        user = self._users[session.email]
        return LinkUser(email=user.email, name=user.name)

    def _session(self, email: str, client_secret: str) -> _Session:
        session = self._sessions.get(client_secret)
        if session is None or session.email != email.strip().lower():
            raise LinkError(LinkErrorKind.CODE_EXPIRED, "unknown or finished sandbox session")
        return session
