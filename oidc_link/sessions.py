"""SSO sessions: after one SMS sign-in, the same browser signs in at any client without another.

The browser holds a random secret in a cookie; Redis holds the session under its digest,
with an idle and an absolute lifetime.
"""

from __future__ import annotations

from dataclasses import replace

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes
from oidc_link.ids import new_id, new_secret
from oidc_link.models import Identity, SsoSession
from oidc_link.store import Store, Writes

# Begins the cookie value of every session started since an https issuer names its cookie
# "__Host-..." (web/browser.py). Such a value under the old plain name can only be a plant
# (a sibling subdomain setting someone's session in this browser); an unmarked one is a
# session from before the rename, which moves to the new name once. In the value, not the
# record, so that a version before the rename can still read the sessions this one stores.
HOST_COOKIE_MARK = "h."


def began_under_host_cookie(secret: str) -> bool:
    return secret.startswith(HOST_COOKIE_MARK)


class Sessions:
    def __init__(self, store: Store, clock: Clock, lifetimes: Lifetimes) -> None:
        self._store = store
        self._clock = clock
        self._lifetimes = lifetimes

    def start(self, identity: Identity) -> str:
        """A new session for a fresh SMS sign-in; returns the cookie's secret value."""
        return self.begin(identity)[0]

    def begin(
        self, identity: Identity, device: str | None = None, writes: Writes | None = None
    ) -> tuple[str, SsoSession]:
        """A new session, and its cookie secret: started before the code is issued, so the
        code (and the ID token) carry its ``sid``. With ``writes``, stored with them (the
        code's, say: one round trip for both)."""
        if writes is None:
            # A batch of its own for the session and the person's list: one round trip.
            with self._store.writes() as batch:
                return self.begin(identity, device, batch)
        now = self._clock.now()
        secret = HOST_COOKIE_MARK + new_secret(32)
        session = SsoSession(
            sid=new_id("sid", 16),
            identity=identity,
            created_at=now,
            absolute_expiry=identity.auth_time + self._lifetimes.session_absolute,
            idle_expiry=now + self._lifetimes.session_idle,
            device=device,
        )
        self._store.sessions.save_new(secret, session, identity.email, writes=writes)
        return secret, session

    def find(self, secret: str | None, renewal: Writes | None = None) -> SsoSession | None:
        """The live session behind a cookie, its idle time renewed; None when there is none.

        With ``renewal`` (a batch the caller sends before it answers), the renewed session
        is queued there rather than stored at once: it then shares a later round trip.
        """
        if not secret:
            return None
        session = self._store.sessions.load(secret)
        now = self._clock.now()
        if session is None or now >= min(session.idle_expiry, session.absolute_expiry):
            return None
        renewed = replace(session, idle_expiry=now + self._lifetimes.session_idle)
        self._store.sessions.save(secret, renewed, writes=renewal)
        return renewed

    def renewals(self) -> Writes:
        """A batch for ``find``'s renewal, which reads and writes of the rest of the request
        may join; sent when its ``with`` block ends (one round trip), or sooner by ``send``."""
        return self._store.writes()

    def end(self, secret: str | None) -> None:
        if secret:
            self._store.sessions.delete(secret)

    def of_person(self, email: str) -> list[tuple[str, SsoSession]]:
        """A person's live sessions (cookie digest, session), oldest first."""
        now = self._clock.now()
        return [
            (key, session)
            for key, session in self._store.sessions.of_person(email)
            if now < min(session.idle_expiry, session.absolute_expiry)
        ]

    def end_stored(self, session_digest: str) -> None:
        """End a session known by its cookie's digest (the account page's list)."""
        self._store.sessions.delete_by_digest(session_digest)

    def with_clients(self, email: str) -> list[tuple[str, SsoSession, list[str]]]:
        """A person's live sessions (cookie digest, session, the clients it signed in to),
        oldest first; the clients of all of them in one round trip."""
        found = self.of_person(email)
        clients = self._store.sessions.clients([session.sid for _, session in found])
        return [
            (key, session, signed_in_to)
            for (key, session), signed_in_to in zip(found, clients, strict=True)
        ]

    def leave_sector(self, session_digest: str, session: SsoSession, sector: str) -> None:
        """The session stays, but no longer signs the person in at ``sector``'s clients
        without a new SMS (oauth/sso.py SessionReuse checks it)."""
        if sector not in session.left_sectors:
            left = replace(session, left_sectors=(*session.left_sectors, sector))
            self._store.sessions.replace_by_digest(session_digest, left)

    @property
    def cookie_lifetime(self) -> int:
        return self._lifetimes.session_absolute
