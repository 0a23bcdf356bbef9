"""Consent (OIDC Core §3.1.2.4): the one decision whether a request needs the person's
consent, and what they allowed each third-party client (scopes added up, each for
``lifetimes.consent``, until revoked). The web layer asks the person; nothing here shows a page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import scope_to_list

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings, Lifetimes
from oidc_link.models import Identity
from oidc_link.oauth.claims import SCOPE_CLAIMS
from oidc_link.platform.accounts import Accounts
from oidc_link.platform.events import Events
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

    def __init__(
        self,
        store: Store,
        clock: Clock,
        lifetimes: Lifetimes,
        accounts: Accounts,
        events: Events,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lifetimes = lifetimes
        # Who the client knows the person as: consent is kept under that ``sub``.
        self._accounts = accounts
        self._events = events

    def request(
        self, client: ClientSettings | None, parameters: Mapping[str, str], identity: Identity
    ) -> ConsentRequest:
        """The one consent decision: what the person must approve before this client hears
        of them. Third-party clients only, when not yet remembered or ``prompt=consent``."""
        if client is None or not client.third_party:
            return NOT_NEEDED
        again = "consent" in (parameters.get("prompt") or "").split()
        user = self._accounts.subject_of(client.subject_sector, identity.email)
        return self.ask(user, client.client_id, asked_scopes(client, parameters), again=again)

    def allow(
        self, client: ClientSettings | None, parameters: Mapping[str, str], identity: Identity
    ) -> None:
        """The person allowed what this request asks; later requests for no more go through."""
        if client is not None and client.third_party:
            user = self._accounts.subject_of(client.subject_sector, identity.email)
            self.remember(user, client.client_id, asked_scopes(client, parameters))

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

    def revoke(self, user: str, client_id: str) -> bool:
        """Forget everything this user allowed this client: the next sign-in asks again.
        With it, the platform's account.application.deauthorized event (``user`` is the
        account's id); False, and no event, when there was nothing to forget.

        Tokens already issued are not touched here; revoking those is tokens.py's job.
        """
        event = self._events.deauthorized(user, client_id)
        return self._store.consents.delete(user, client_id, event)


# The claims of the ``claims`` parameter (OIDC Core §5.5) and the scope that reveals the same.
_SCOPE_OF_CLAIM = {claim: scope for scope, claims in SCOPE_CLAIMS.items() for claim in claims}


def asked_scopes(client: ClientSettings, parameters: Mapping[str, str]) -> list[str]:
    """The scopes a request asks of the person: those the client may have (as Authlib
    grants them), plus any that individual claims of a ``claims`` request would reveal."""
    asked = [s for s in scope_to_list(parameters.get("scope")) or [] if s in client.scopes]
    try:
        claims = json.loads(parameters.get("claims") or "{}")
    except ValueError:
        claims = {}  # not ours to judge here: the request's validation refuses it
    for member in ("userinfo", "id_token"):
        wanted = claims.get(member) if isinstance(claims, dict) else None
        if isinstance(wanted, dict):
            asked += [_SCOPE_OF_CLAIM[name] for name in wanted if name in _SCOPE_OF_CLAIM]
    # A claim is released only within the client's registered scopes (claims_for_scope),
    # so consent is never asked for a scope that could not be released anyway.
    return [scope for scope in dict.fromkeys(asked) if scope in client.scopes]
