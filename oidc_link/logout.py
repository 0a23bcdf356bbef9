"""Logout: RP-Initiated Logout 1.0 requests checked and confirmed, SSO sessions ended, and the
session's relying parties told with Back-Channel Logout 1.0 logout tokens.

No Flask and no HTTP: the web layer shows the pages; ending a session writes its notice to the
outbox (store/sessions.py), and backchannel.py delivers it with tokens this module signs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings, Settings
from oidc_link.errors import LogoutError
from oidc_link.ids import digest, new_id, new_secret, same
from oidc_link.keys import SigningKeys, TokenError
from oidc_link.models import PendingLogout, SsoSession
from oidc_link.oauth.tokens import TokenLifecycle
from oidc_link.platform.accounts import Accounts
from oidc_link.sessions import Sessions
from oidc_link.store import Store

log = logging.getLogger(__name__)

# Back-Channel Logout 1.0 §2.4: the one event a logout token carries.
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# §2.4 recommends a short lifetime: each delivery attempt signs a token of its own.
LOGOUT_TOKEN_LIFETIME = 120
# How long the confirmation page can be answered.
CONFIRMATION_LIFETIME = 600


class LogoutRequestError(LogoutError):
    """A logout request we refuse without redirecting anywhere (RP-Initiated Logout 1.0 §2,
    §3: an unregistered or unverifiable post_logout_redirect_uri); the message is for the
    user."""

    code = "logout_request_invalid"


class LogoutConfirmationError(LogoutError):
    """An answer to a confirmation page that is unknown, answered, expired or not this browser's."""

    code = "logout_confirmation_expired"
    message = (
        "This sign-out question has expired or was already answered. "
        "If you want to sign out, start again from the site."
    )


@dataclass(frozen=True)
class EndSessionRequest:
    """A checked logout request (RP-Initiated Logout 1.0 §2).

    ``client`` is the relying party when one was named (``client_id``) or is the audience
    of a valid ``id_token_hint``; ``hint`` is that hint's verified claims.
    """

    client: ClientSettings | None = None
    post_logout_redirect_uri: str | None = None
    state: str | None = None
    hint: Mapping[str, Any] | None = None

    @property
    def redirect_location(self) -> str | None:
        """Where to send the browser after logout (§3), ``state`` added, or None."""
        if not self.post_logout_redirect_uri:
            return None
        if self.state is None:
            return self.post_logout_redirect_uri
        parts = urlsplit(self.post_logout_redirect_uri)
        query = [*parse_qsl(parts.query, keep_blank_values=True), ("state", self.state)]
        return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class SectorSession:
    """One of a person's SSO sessions as an account page of a sector sees it: the
    sector's clients it signed in to, and whether it signed in to other clients too."""

    digest: str
    session: SsoSession
    clients: tuple[str, ...]
    shared: bool


@dataclass(frozen=True)
class SectorSignOut:
    """What the account page's sign-out did: sessions ended (only the sector used them),
    and sessions left to other apps but signed out of the sector."""

    ended: int
    left: int


class Logout:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        keys: SigningKeys,
        clock: Clock,
        sessions: Sessions,
        accounts: Accounts,
        tokens: TokenLifecycle,
    ) -> None:
        self._settings = settings
        self._store = store
        self._keys = keys
        self._clock = clock
        self._sessions = sessions
        self._accounts = accounts
        self._tokens = tokens
        # The clients a logout tells: those that registered a back-channel logout URI.
        self._to_tell = [
            client for client in settings.clients if client.backchannel_logout_uri
        ]

    # The request.

    def check(self, parameters: Mapping[str, str]) -> EndSessionRequest:
        """Validate the parameters of §2; anything we cannot trust raises LogoutRequestError.

        ``ui_locales`` and ``logout_hint`` are accepted and not needed: the pages are in
        English, and the session to end is the browser's own.
        """
        hint = self._verify_hint(parameters.get("id_token_hint"))
        client = None
        if hint is not None:
            client = self._settings.client(_audience(hint))
        client_id = parameters.get("client_id")
        if client_id:
            named = self._settings.client(client_id)
            if named is None:
                raise LogoutRequestError("The site that sent you here is not registered.")
            # §2: when both are given, client_id must be the hint's audience.
            if client is not None and client.client_id != named.client_id:
                raise LogoutRequestError("The sign-out request names two different sites.")
            client = named
        redirect_uri = parameters.get("post_logout_redirect_uri") or None
        if redirect_uri is not None:
            # §3: only to a URI registered for a client we could identify, exactly as given.
            if client is None:
                raise LogoutRequestError("The sign-out request does not say which site sent it.")
            if redirect_uri not in client.post_logout_redirect_uris:
                raise LogoutRequestError(
                    "The sign-out request asks to return to an address the site did not register."
                )
        return EndSessionRequest(
            client=client,
            post_logout_redirect_uri=redirect_uri,
            state=parameters.get("state"),
            hint=hint,
        )

    def _verify_hint(self, hint: str | None) -> dict[str, Any] | None:
        if not hint:
            return None
        audiences = [client.client_id for client in self._settings.clients]
        try:
            # §2: an expired ID token is still a good hint.
            claims = self._keys.verify(hint, audience=audiences, check_expiry=False)
        except (TokenError, ValueError) as error:
            log.info("Refused id_token_hint at logout: %s", type(error).__name__)
            raise LogoutRequestError("The sign-out request carries an unreadable token.") from None
        if claims.get("iss") != self._settings.issuer or "events" in claims:
            # Ours, but not one of our ID tokens (a logout token has ``events``).
            raise LogoutRequestError("The sign-out request carries an unreadable token.")
        return claims

    def is_from_session(self, request: EndSessionRequest, session: SsoSession) -> bool:
        """The request clearly comes from the session's own relying party: a valid hint
        naming this very session (its ``sid``) and person (``sub`` for that client).

        Only then do we log out without asking (§2: the OP SHOULD ask for confirmation
        otherwise, since any page can send a browser to the logout endpoint)."""
        if request.hint is None or request.client is None:
            return False
        sid = request.hint.get("sid")
        sub = request.hint.get("sub")
        if not isinstance(sid, str) or not isinstance(sub, str):
            return False
        expected_sub = self._accounts.subject_of(
            request.client.subject_sector, session.identity.email
        )
        return same(sid, session.sid) and same(sub, expected_sub)

    # The confirmation page.

    def ask(self, request: EndSessionRequest, browser_id: str) -> PendingLogout:
        """Remember a request while the user is asked, bound to this browser."""
        pending = PendingLogout(
            id=new_id("lo"),
            browser_digest=digest(browser_id),
            csrf_token=new_secret(24),
            expires_at=self._clock.now() + CONFIRMATION_LIFETIME,
            client_id=request.client.client_id if request.client else None,
            post_logout_redirect_uri=request.post_logout_redirect_uri,
            state=request.state,
        )
        self._store.logouts.add(pending)
        return pending

    def answer(self, logout_id: str, browser_id: str | None, csrf_token: str) -> EndSessionRequest:
        """Take the pending request the confirmation page was about, once, from the browser
        that was asked; its redirect is checked again against the current registration."""
        pending = self._store.logouts.load(logout_id)
        if (
            pending is None
            or not browser_id
            or not same(pending.browser_digest, digest(browser_id))
            or not same(pending.csrf_token, csrf_token)
            or pending.expires_at <= self._clock.now()
        ):
            raise LogoutConfirmationError()
        if self._store.logouts.take(logout_id) is None:
            raise LogoutConfirmationError()  # answered meanwhile (a double submit)
        client = self._settings.client(pending.client_id) if pending.client_id else None
        redirect_uri = pending.post_logout_redirect_uri
        if client is None or redirect_uri not in client.post_logout_redirect_uris:
            redirect_uri = None
        return EndSessionRequest(
            client=client, post_logout_redirect_uri=redirect_uri, state=pending.state
        )

    # Ending the session.

    def end(self, secret: str, session: SsoSession) -> None:
        """End the SSO session, revoke what must go with it, and tell its relying parties."""
        self._sessions.end(secret)
        self._close(session)

    # The account page: a platform's sign-out, within its sector only.

    def sector_sessions(self, email: str, sector: str) -> list[SectorSession]:
        """A verified person's SSO sessions that signed in to a client of ``sector`` (and
        were not signed out of it yet): what the account page lists and can end.

        A session is the person's, not the platform's: one that signed in nowhere in the
        sector is not the platform's to see or end.
        """
        found = []
        for session_digest, session, signed_in_to in self._sessions.with_clients(email):
            if sector in session.left_sectors:
                continue
            ours = tuple(client for client in signed_in_to if self._sector_of(client) == sector)
            if ours:
                found.append(
                    SectorSession(
                        session_digest, session, ours, shared=len(ours) < len(signed_in_to)
                    )
                )
        return found

    def end_in_sector(self, email: str, sector: str) -> SectorSignOut:
        """The account page's sign-out: each session of ``sector_sessions`` ends when only
        the sector used it (a logout of its own); a session other apps use too stays for
        them, and the sector's clients are told and no longer signed in by it."""
        ended = left = 0
        for found in self.sector_sessions(email, sector):
            if found.shared:
                self._sessions.leave_sector(found.digest, found.session, sector)
                session = found.session
                to_tell = self._subjects(session.identity.email, found.clients)
                taken = self._store.sessions.take_clients(session.sid, found.clients, to_tell)
                log.info(
                    "SSO session %s signed out of one sector: %d client(s), notice %s",
                    session.sid,
                    len(taken.client_ids),
                    taken.notice_id or "not needed",
                )
                left += 1
            else:
                self._sessions.end_stored(found.digest)
                self._close(found.session)
                ended += 1
        return SectorSignOut(ended=ended, left=left)

    def _sector_of(self, client_id: str) -> str | None:
        client = self._settings.client(client_id)
        return client.subject_sector if client else None

    def _close(self, session: SsoSession) -> None:
        """Take the session's clients and families, writing the clients' logout notice to
        the outbox in the same step (delivered by the outbox's worker, even after a stop)."""
        to_tell = self._subjects(session.identity.email)
        taken = self._store.sessions.take_dependents(session.sid, to_tell)
        # Back-Channel Logout 1.0 §2.7: refresh tokens issued without offline_access end
        # with the session (only those families were bound to it).
        for family_id in taken.families:
            self._tokens.revoke_family(family_id)
        log.info(
            "Ended SSO session %s: %d client(s), notice %s, %d token family(ies) revoked",
            session.sid,
            len(taken.client_ids),
            taken.notice_id or "not needed",
            len(taken.families),
        )

    def _subjects(self, email: str, among: Sequence[str] | None = None) -> dict[str, str]:
        """The ``sub`` each client that takes back-channel notices (of ``among``, else all)
        knows the person by, one lookup per sector: what the notice carries instead of the
        email, so the outbox holds nothing the clients are not told anyway."""
        by_sector: dict[str, str] = {}
        subjects = {}
        for client in self._to_tell:
            if among is not None and client.client_id not in among:
                continue
            sector = client.subject_sector
            if sector not in by_sector:
                by_sector[sector] = self._accounts.subject_of(sector, email)
            subjects[client.client_id] = by_sector[sector]
        return subjects

    def logout_token(self, client: ClientSettings, sid: str, sub: str) -> str:
        """A logout token for ``client`` about its user ``sub``'s session ``sid``
        (Back-Channel Logout 1.0 §2.4): explicitly typed, with both ``sub`` and ``sid``, and
        never a ``nonce`` (§2.4 forbids it). Signed at each delivery attempt
        (backchannel.py), so its short lifetime counts from then."""
        now = self._clock.now()
        claims = {
            "iss": self._settings.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_LIFETIME,
            "jti": new_secret(18),
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
            "sub": sub,
            "sid": sid,
        }
        return self._keys.sign(claims, client.id_token_signed_response_alg, typ="logout+jwt")


def _audience(claims: Mapping[str, Any]) -> str:
    """The client an ID token was issued to: ``aud``, or ``azp`` when ``aud`` is a list."""
    audience = claims.get("aud")
    if isinstance(audience, list):
        return str(claims.get("azp") or (audience[0] if audience else ""))
    return str(audience or "")
