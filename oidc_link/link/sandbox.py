"""The sandbox Link network: test users from config, codes shown on the console, magic codes.

Like Stripe's test mode, it never sends an SMS. Its session handle (the client secret it
answers with) carries the session itself, sealed (AES-GCM, with a key every worker shares):
the email, and once a code is sent, that code's digest and expiry. So a lookup and a code
sent touch no store, and any worker or instance can take any step. Only checking a code
keeps state (SandboxSessions: wrong attempts, a session's end), as Link does. Production
settings refuse the sandbox altogether.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from oidc_link.clock import Clock
from oidc_link.config import SandboxUser
from oidc_link.ids import digest, same
from oidc_link.link import (
    CheckAhead,
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)
from oidc_link.sealed import Cipher

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
HANDLE_PREFIX = "sandbox_cs_"
# Sealed handles are bound to this use of the sandbox's key.
_HANDLE_CONTEXT = b"oidc-link sandbox link session v1"
# A handle's fields as JSON: one encoder for every handle (``json.dumps`` with separators
# builds one per call), writing what ``json.dumps`` writes.
_HANDLE_ENCODER = json.JSONEncoder(separators=(",", ":"))

# What checking a code did to its session (SandboxSessions.check_code).
CodeOutcome = Literal["accepted", "wrong", "locked", "unknown"]


class SandboxSessions(Protocol):
    """The sandbox's shared state, by session id: the sealing key of its handles, and what
    checking codes did to each session. Each check is atomic, so two workers never both
    accept one session's code or lose a wrong attempt."""

    # The key ``sealing_key`` keeps (None until it is first asked for).
    kept_key: bytes | None

    def sealing_key(self, *, again: bool = False) -> bytes:
        """The key every worker and instance seals handles with (created once, then kept);
        ``again``: read anew, after a handle did not open with the one kept."""
        ...

    def check_code(
        self, session_id: str, sent: int, right: bool, max_attempts: int, ttl: int
    ) -> CodeOutcome:
        """Record one check of the ``sent``-th code of a session: a right one ends the
        session (accepted), as does the ``max_attempts``-th wrong one of that code (locked).
        A session that ended, or a code older than one already checked: unknown."""
        ...

    def check_ahead(self, session_id: str) -> SandboxCheckAhead:
        """``check_code``'s state of ``session_id``, to read in another step's round trip."""
        ...


class SandboxCheckAhead(CheckAhead, Protocol):
    """A CheckAhead that makes ``check_code``'s decision on the state it read."""

    session_id: str

    def check(self, sent: int, right: bool, max_attempts: int, ttl: int) -> CodeOutcome | None:
        """As ``check_code`` (None: the state was not read), its write kept for ``after``."""
        ...


@dataclass(frozen=True)
class _Session:
    """What a handle carries: whose session, since when, and the code last sent in it (its
    digest, its expiry and how many codes were sent before it)."""

    id: str
    email: str
    opened_at: int
    sent: int = 0
    code_digest: str | None = None
    code_expires_at: int = 0


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
        self._cipher: Cipher | None = None  # the sessions' sealing key's, made once

    def lookup(self, email: str) -> LookupResult:
        email = email.strip().lower()
        refusal = MAGIC_LOOKUPS.get(email.partition("@")[0])
        if refusal is not None:
            raise LinkError(refusal, "sandbox magic email")
        user = self._users.get(email)
        if user is None:
            return LookupResult(exists=False)
        # Sessions hold the normalised email, the key of self._users, so that users
        # configured in mixed case still match the lookups below.
        session = _Session(secrets.token_urlsafe(16), user.email.lower(), self._clock.now())
        return LookupResult(
            exists=True, client_secret=self._seal(session), redacted_phone=redact_phone(user.phone)
        )

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        """A new code, announced; the answer's client secret carries it (and replaces the
        one given: the earlier code, and its wrong attempts, are left behind)."""
        email = email.strip().lower()
        session = self._open(client_secret, email)
        if session is None or email not in self._users:
            raise _unknown_session()
        code = f"{secrets.randbelow(1_000_000):06d}"
        sent = _Session(
            session.id,
            session.email,
            session.opened_at,
            sent=session.sent + 1,
            code_digest=digest(code),
            code_expires_at=self._clock.now() + CODE_LIFETIME,
        )
        user = self._users[email]
        self._announce(f"[sandbox] Link verification code for {user.email}: {code}")
        return VerificationStarted(
            redacted_phone=redact_phone(user.phone),
            client_secret=self._seal(sent),
            session_hint=session.id,
        )

    def check_ahead(self, session_hint: str) -> SandboxCheckAhead:
        """The session's state, read under the flow's lock (store/sandbox.py CodeCheckAhead
        argues why its check is safe without the script): the hint is the session's id,
        which the handle also seals; a hint that names another session is not used."""
        return self._sessions.check_ahead(session_hint)

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        email = email.strip().lower()
        session = self._open(client_secret, email)
        if session is None:
            raise _unknown_session()
        refusal = MAGIC_CODES.get(code)
        if code in MAGIC_CODES and refusal is not None:
            raise LinkError(refusal, "sandbox magic code")
        right = code in MAGIC_CODES  # 000000: accepted, code sent or not
        if not right:
            if session.code_digest is None or session.code_expires_at <= self._clock.now():
                raise LinkError(LinkErrorKind.CODE_EXPIRED)
            right = same(digest(code), session.code_digest)
        ttl = session.opened_at + SESSION_LIFETIME - self._clock.now()
        outcome = None
        mine = cast("SandboxCheckAhead | None", ahead)  # check_ahead's, given back
        if mine is not None and mine.session_id == session.id:
            outcome = mine.check(session.sent, right, MAX_ATTEMPTS, ttl)
        if outcome is None:
            outcome = self._sessions.check_code(session.id, session.sent, right, MAX_ATTEMPTS, ttl)
        if outcome == "unknown":
            raise _unknown_session()
        if outcome == "locked":
            raise LinkError(LinkErrorKind.TOO_MANY_ATTEMPTS)
        if outcome == "wrong":
            raise LinkError(LinkErrorKind.INVALID_CODE)
        user = self._users[email]
        return LinkUser(email=user.email, name=user.name, city=user.city)

    def _seal(self, session: _Session) -> str:
        fields = [
            session.id,
            session.email,
            session.opened_at,
            session.sent,
            session.code_digest,
            session.code_expires_at,
        ]
        plaintext = _HANDLE_ENCODER.encode(fields).encode()
        return HANDLE_PREFIX + self._cipher_of(self._sealing_key()).encrypt(
            plaintext, _HANDLE_CONTEXT
        )

    def _sealing_key(self) -> bytes:
        """The key the sessions keep, read as an attribute once they have one: a call to
        the store, even one that sends nothing, goes through its outage watch."""
        kept = self._sessions.kept_key
        return kept if kept is not None else self._sessions.sealing_key()

    def _cipher_of(self, key: bytes) -> Cipher:
        """AES-GCM under ``key``, the one the sessions keep, made once: made again when the
        sessions hand another key (read anew), which then replaces the one held here."""
        cipher = self._cipher
        if cipher is None or cipher.key is not key:
            cipher = self._cipher = Cipher(key)
        return cipher

    def _open(self, client_secret: str, email: str) -> _Session | None:
        """The live session ``client_secret`` seals for ``email``; None when it seals none
        (made up, or sealed with another key), is another email's, or is over."""
        if not client_secret.startswith(HANDLE_PREFIX):
            return None
        sealed = client_secret[len(HANDLE_PREFIX) :]
        key = self._sealing_key()
        plaintext = self._cipher_of(key).decrypt(sealed, _HANDLE_CONTEXT)
        if plaintext is None:
            # Sealed under a key this worker no longer holds (Redis lost it, and another
            # worker made a new one) or made up: read the key anew, once.
            fresh = self._sessions.sealing_key(again=True)
            if fresh != key:
                plaintext = self._cipher_of(fresh).decrypt(sealed, _HANDLE_CONTEXT)
        if plaintext is None:
            return None
        session = _Session(*json.loads(plaintext.decode()))  # ASCII: ours, authenticated
        if session.email != email or session.opened_at + SESSION_LIFETIME <= self._clock.now():
            return None
        return session


def _unknown_session() -> LinkError:
    return LinkError(LinkErrorKind.CODE_EXPIRED, "unknown or finished sandbox session")
