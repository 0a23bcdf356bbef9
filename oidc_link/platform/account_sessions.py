"""Account-page sessions: what a Login Link's single visit turns into.

A random secret in a cookie scoped to the account page; Redis holds the session under its
digest for ``lifetimes.account_session``. Separate from SSO sessions: a platform's Login
Link opens the account page, it does not sign the browser in at relying parties.
"""

from __future__ import annotations

from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes
from oidc_link.ids import new_secret
from oidc_link.records import Record
from oidc_link.store import Store


@dataclass(frozen=True)
class AccountSession(Record):
    account_id: str
    owner: str
    client_id: str
    expires_at: int
    # The account page's forms carry it (its cookie is SameSite=Lax, forms check this too).
    csrf_token: str


class AccountSessions:
    def __init__(self, store: Store, clock: Clock, lifetimes: Lifetimes) -> None:
        self._store = store
        self._clock = clock
        self._lifetimes = lifetimes

    def start(self, account_id: str, owner: str, client_id: str) -> tuple[str, AccountSession]:
        secret = new_secret(32)
        session = AccountSession(
            account_id=account_id,
            owner=owner,
            client_id=client_id,
            expires_at=self._clock.now() + self._lifetimes.account_session,
            csrf_token=new_secret(24),
        )
        self._store.accounts.save_session(secret, session.to_record(), session.expires_at)
        return secret, session

    def find(self, secret: str | None) -> AccountSession | None:
        if not secret:
            return None
        raw = self._store.accounts.load_session(secret)
        session = AccountSession.from_record(raw) if raw else None
        if session is None or session.expires_at <= self._clock.now():
            return None
        return session

    def end(self, secret: str | None) -> None:
        if secret:
            self._store.accounts.delete_session(secret)

    @property
    def lifetime(self) -> int:
        return self._lifetimes.account_session
