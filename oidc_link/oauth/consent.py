"""Remembered consent: which scopes a user allowed one third-party client (OIDC Core §3.1.2.4).

Owns what a grant means (scopes added up, each for ``lifetimes.consent``, until revoked);
the oauth layer decides when a request needs one and the web layer asks the person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes
from oidc_link.store import Store


@dataclass(frozen=True)
class ConsentRequest:
    """What one authorization request asks a person to allow.

    ``asked`` is every scope of the request that needs approval, ``new`` those not yet
    remembered; ``needed`` says whether the consent page must be shown.
    """

    asked: tuple[str, ...] = ()
    new: tuple[str, ...] = ()
    needed: bool = False

    @property
    def already_allowed(self) -> tuple[str, ...]:
        return tuple(scope for scope in self.asked if scope not in self.new)


NOT_NEEDED = ConsentRequest()


class Consents:
    """Per (user, client) grants. ``user`` is the pairwise ``sub`` the client knows the
    person by (accounts.sign_in_account_id), so the stored keys say nothing about them."""

    def __init__(self, store: Store, clock: Clock, lifetimes: Lifetimes) -> None:
        self._store = store
        self._clock = clock
        self._lifetimes = lifetimes

    def granted(self, user: str, client_id: str) -> frozenset[str]:
        """The scopes this user allowed this client that are still in force."""
        now = self._clock.now()
        return frozenset(
            scope
            for scope, until in self._store.consents.load(user, client_id).items()
            if until > now
        )

    def ask(
        self, user: str, client_id: str, scopes: Iterable[str], *, again: bool
    ) -> ConsentRequest:
        """The consent page this request needs: the scopes not yet allowed, or all of
        them when the client asks ``again`` (``prompt=consent``)."""
        asked = tuple(dict.fromkeys(scopes))
        granted = self.granted(user, client_id)
        new = tuple(scope for scope in asked if scope not in granted)
        if again:
            return ConsentRequest(asked=asked, new=asked, needed=True)
        return ConsentRequest(asked=asked, new=new, needed=bool(new))

    def remember(self, user: str, client_id: str, scopes: Iterable[str]) -> None:
        """Add ``scopes`` to what the user allowed; each lasts ``lifetimes.consent`` from now."""
        until = self._clock.now() + self._lifetimes.consent
        self._store.consents.add(user, client_id, dict.fromkeys(scopes, until), until)

    def revoke(self, user: str, client_id: str) -> None:
        """Forget everything this user allowed this client: the next sign-in asks again.

        Tokens already issued are not touched here; revoking those is tokens.py's job.
        """
        self._store.consents.delete(user, client_id)
