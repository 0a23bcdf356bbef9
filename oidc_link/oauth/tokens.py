"""The token lifecycle after a code is redeemed: families, refresh rotation, revocation.

The RFC 7009 / RFC 7662 endpoints over the store; token_endpoint.py answers the grants with
it. Framework-free; nothing here issues codes or shows pages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from oidc_link.clock import Clock
from oidc_link.config import AUTH_METHODS, ClientSettings, Settings
from oidc_link.models import AccessToken, AuthorizationCode, RefreshToken
from oidc_link.store import Store, Writes, keyspace
from oidc_link.store.outbox import OutboxEntry
from oidc_link.store.tokens import Redemption

log = logging.getLogger(__name__)

ACCESS_TOKEN = "access_token"  # noqa: S105 - a token type name, not a secret
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a token type name, not a secret
# The token endpoint's methods, each client with its own (as for grant_type=code).
CLIENT_AUTH_METHODS = list(AUTH_METHODS)
# Revocation: each client with its own method; a public client names itself by client_id,
# as RFC 7009 §2.1 allows, since holding the token is what proves the right to drop it.
REVOCATION_AUTH_METHODS = CLIENT_AUTH_METHODS
# Introspection tells who a token is for, so the caller must really authenticate
# (RFC 7662 §2.1, §4): public clients have nothing to authenticate with.
INTROSPECTION_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


@dataclass(frozen=True)
class FoundToken:
    """An access or refresh token looked up by its value, with what makes it usable.

    ``revoked`` means its family (or, for an access token, the token itself) was revoked;
    ``rotated_at`` is set once a refresh token has been exchanged for a new one.
    """

    value: str
    kind: str
    record: AccessToken | RefreshToken
    expired: bool
    revoked: bool
    rotated_at: int | None = None

    def check_client(self, client: ClientMixin) -> bool:
        return self.record.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.record.scope

    def is_expired(self) -> bool:
        return self.expired

    def is_revoked(self) -> bool:
        # A rotated refresh token is no longer the client's current one (RFC 9700 §4.14.2).
        return self.revoked or self.rotated_at is not None


class TokenLifecycle:
    """Families of tokens: opened when a code is redeemed, revoked as a whole.

    A family is everything descended from one authorization code: its access tokens and
    every refresh token rotated from the first one. The family id is in each token record,
    and ``store.tokens.family_is_live`` is one GET, so revocation never looks for its members.
    """

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        lifetimes = settings.lifetimes
        # How long a spent code, and a revoked family's tombstone, are remembered: a code
        # replayed later than this has nothing left to revoke but its refresh tokens, and
        # those read as revoked anyway once the family key is gone.
        self.memory = lifetimes.code + lifetimes.access_token

    # Codes.

    @staticmethod
    def family_of(code: str) -> str:
        """The family of the tokens a code will issue, named by the code itself
        (keyspace.code_family: the code's key lives in the family's hash slot): known both
        where the code is issued, which binds the family to the account and session, and
        where it is redeemed, whose one script opens it."""
        return keyspace.code_family(code)

    @staticmethod
    def ends_with_session(scope: str) -> bool:
        """Tokens without offline_access end with the session that issued them (Back-Channel
        Logout 1.0 §2.7): their family goes into the session's set."""
        return "offline_access" not in scope.split()

    def bind_family(
        self,
        code: AuthorizationCode,
        family_id: str,
        writes: Writes,
        *,
        in_session_set: bool = False,
    ) -> None:
        """Queue what finds a code's family later: the account's families ("Sign out
        everywhere" revokes each) and, for tokens that end with the session, the session's.
        The sets outlive the family's longest life from the code's last moment.
        ``in_session_set``: the caller already put the family in the session's set, in the
        same batch (grants.py, with the session's client)."""
        lifetimes = self.settings.lifetimes
        ttl = lifetimes.refresh_token + lifetimes.code
        self.store.tokens.remember_account_family(code.subject, family_id, ttl, writes=writes)
        if code.sid and not in_session_set and self.ends_with_session(code.scope):
            self.store.sessions.remember_family(code.sid, family_id, ttl, writes=writes)

    def bind_family_now(self, code: AuthorizationCode, family_id: str) -> None:
        """``bind_family`` in a batch of its own: for a code an earlier version issued, whose
        family was not bound when the code was (one MULTI more, at its redemption)."""
        with self.store.writes() as writes:
            self.bind_family(code, family_id, writes)

    def redeem(
        self, code: str, client: ClientSettings, redirect_uri: str | None, verifier_challenge: str
    ) -> tuple[Redemption, str, dict[str, Any]]:
        """Spend ``code`` and, when the token endpoint's checks pass, store its tokens: one
        script (store/token_scripts.py REDEEM_CODE). Returns what the script decided, the family,
        and the token response (without an ID token) it stored, when it did. A code
        presented again revokes what it issued (RFC 6749 §4.1.2)."""
        lifetimes = self.settings.lifetimes
        family_id = self.family_of(code)
        # Each names its family: its key then shares the family's hash slot (keyspace.py).
        access_token, refresh_token = self.store.tokens.new_token_pair(family_id)
        redemption = self.store.tokens.redeem_code(
            code,
            family_id=family_id,
            remember_for=self.memory,
            client_id=client.client_id,
            redirect_uri=redirect_uri or "",
            verifier_challenge=verifier_challenge,
            refresh_always=client.refresh_tokens,
            registered_scopes=" ".join(client.scopes),
            access_token=access_token,
            refresh_token=refresh_token,
            access_lifetime=lifetimes.access_token,
            refresh_lifetime=lifetimes.refresh_token,
        )
        if redemption.outcome == "unknown":
            self.revoke_spent_code(code)
        # As Authlib's BearerTokenGenerator shapes a token response.
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": lifetimes.access_token,
        }
        if redemption.with_refresh:
            token["refresh_token"] = refresh_token
        if redemption.scope:
            token["scope"] = redemption.scope
        return redemption, family_id, token

    def revoke_spent_code(self, code: str) -> None:
        """A code presented again: revoke what it issued (RFC 6749 §4.1.2, RFC 9700 §4.2.4)."""
        family_id = self.store.tokens.family_of_spent_code(code)
        if family_id is not None:
            log.warning("Authorization code replayed: revoking token family %s", family_id)
            self.revoke_family(family_id)

    # Looking up.

    def find(self, value: str, hint: str | None = None) -> FoundToken | None:
        """The token with this value; the hint says where to look first (RFC 7009 §2.1)."""
        if hint == REFRESH_TOKEN:
            return self.find_refresh_token(value) or self.find_access_token(value)
        return self.find_access_token(value) or self.find_refresh_token(value)

    def find_access_token(self, value: str) -> FoundToken | None:
        record, live = self.store.tokens.load_access_token_and_family(value)
        if record is None:
            return None
        revoked = not live
        expired = record.expires_at <= self.clock.now()
        return FoundToken(value, ACCESS_TOKEN, record, expired, revoked)

    def find_refresh_token(self, value: str) -> FoundToken | None:
        record, rotated_at = self.store.tokens.load_refresh_token(value)
        if record is None:
            return None
        revoked = not self.store.tokens.family_is_live(record.family_id)
        expired = record.expires_at <= self.clock.now()
        return FoundToken(value, REFRESH_TOKEN, record, expired, revoked, rotated_at)

    # Rotation and revocation.

    def rotate(
        self, value: str, client: ClientSettings, scope: str | None
    ) -> tuple[RefreshToken, dict[str, Any]]:
        """Spend refresh token ``value`` of ``client`` for a new pair: the token it was and
        the token response (without an ID token), or invalid_grant / invalid_scope as
        Authlib's refresh grant answers them (RFC 6749 §6).

        One script checks the old token, spends it and stores the new pair, so the pair is
        drawn first. The first presentation wins an atomic SET NX. A presentation within
        ``lifetimes.refresh_grace`` of the first succeeds too and gets its own new pair in
        the same family: two tabs refreshing at once, or a retry after a lost response, do
        not sign the user out. Later than that it is a replay (RFC 9700 §4.14.2), and the
        family is revoked.
        """
        lifetimes = self.settings.lifetimes
        # Named in the token; for one issued before tokens named it, read first (a round
        # trip more, until its family's next rotation: the new pair names the family).
        family_id = self.store.tokens.family_of_token(value)
        if family_id is None:
            raise InvalidGrantError()
        access_token, refresh_token = self.store.tokens.new_token_pair(family_id)
        rotation = self.store.tokens.rotate_refresh_token(
            value,
            family_id=family_id,
            client_id=client.client_id,
            scope=scope or "",
            registered_scopes=" ".join(client.scopes),
            access_token=access_token,
            refresh_token=refresh_token,
            access_lifetime=lifetimes.access_token,
            refresh_lifetime=lifetimes.refresh_token,
            grace=lifetimes.refresh_grace,
            remember_revoked_for=self.memory,
        )
        if rotation.outcome == "invalid_scope":
            raise InvalidScopeError()
        if rotation.outcome == "reused":
            log.warning("Refresh token reused: revoking token family %s", rotation.family_id)
            raise InvalidGrantError("The refresh token was already used.")
        if rotation.record is None:
            raise InvalidGrantError()
        # As Authlib's BearerTokenGenerator shapes a token response.
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": lifetimes.access_token,
            "refresh_token": refresh_token,
        }
        if rotation.scope:
            token["scope"] = rotation.scope
        return rotation.record, token

    def revoke(self, found: FoundToken) -> None:
        """RFC 7009 §2.1: a refresh token takes its whole family with it; an access token
        goes alone (the "MAY" of §2.1 is not taken: the client keeps its refresh token)."""
        if isinstance(found.record, RefreshToken):
            self.revoke_family(found.record.family_id)
        else:
            self.store.tokens.revoke_access_token(found.value)

    def revoke_family(self, family_id: str) -> None:
        self.store.tokens.revoke_family(family_id, self.memory)

    def revoke_account(self, account_id: str, event: OutboxEntry | None = None) -> int:
        """Revoke every token family of an account (its ``sub``), offline_access included:
        "Sign out everywhere", its ``event`` written as the families are taken. How many."""
        families = self.store.tokens.take_account_families(account_id, event)
        for family_id in families:
            self.revoke_family(family_id)
        return len(families)

    def introspection(self, found: FoundToken) -> dict[str, Any]:
        """RFC 7662 §2.2, for an active token. No personal data beyond the pairwise sub."""
        record = found.record
        claims: dict[str, Any] = {
            "active": True,
            "client_id": record.client_id,
            "scope": record.scope,
            "sub": record.subject,
            "aud": record.client_id,
            "iss": self.settings.issuer,
            "exp": record.expires_at,
        }
        if found.kind == ACCESS_TOKEN:
            claims["token_type"] = "Bearer"  # noqa: S105 - RFC 6750's token type
        if record.issued_at is not None:
            claims["iat"] = record.issued_at
        return claims


class TokenServer(Protocol):
    """What the grant and endpoints below use of the server Authlib hands them (the
    Provider), declared here so that this module imports nothing that registers it."""

    tokens: TokenLifecycle


def _require_token(request: OAuth2Request) -> None:
    """RFC 7009 §2.1, RFC 7662 §2.1: ``token`` is required. The hint only says where to look
    first; we look everywhere anyway, so an unknown hint is ignored rather than refused
    (Authlib would answer a 401 unsupported_token_type)."""
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token'.")


class Revocation(RevocationEndpoint):
    """``POST /revoke`` (RFC 7009)."""

    CLIENT_AUTH_METHODS = REVOCATION_AUTH_METHODS
    server: TokenServer

    def check_params(self, request: OAuth2Request, client: ClientMixin) -> None:
        _require_token(request)

    def authenticate_token(self, request: OAuth2Request, client: ClientMixin) -> Any:
        self.check_params(request, client)
        found = self.server.tokens.find(request.form["token"], request.form.get("token_type_hint"))
        # Another client's token is treated like an unknown one: 200, nothing revoked, and
        # nothing said about whether it exists.
        return found if found is not None and found.check_client(client) else None

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return self.server.tokens.find(token_string, token_type_hint)

    def revoke_token(self, token: FoundToken, request: OAuth2Request) -> None:
        self.server.tokens.revoke(token)


class Introspection(IntrospectionEndpoint):
    """``POST /introspect`` (RFC 7662): a client may introspect its own tokens only."""

    CLIENT_AUTH_METHODS = INTROSPECTION_AUTH_METHODS
    server: TokenServer

    def check_params(self, request: OAuth2Request, client: ClientMixin) -> None:
        _require_token(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return self.server.tokens.find(token_string, token_type_hint)

    def check_permission(
        self, token: FoundToken, client: ClientMixin, request: OAuth2Request
    ) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        return self.server.tokens.introspection(token)
