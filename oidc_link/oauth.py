"""The OAuth 2.0 / OpenID Connect server: Authlib grants and hooks, framework-free.

The web layer hands in a ``ProtocolRequest`` and gets a ``ProtocolResponse`` back; nothing
here knows Flask. Authlib validates requests and shapes errors; we supply storage, the
signing key and the claims.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    ClientMixin,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError
from authlib.oidc.core.util import create_half_hash

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings, Settings
from oidc_link.ids import new_secret, same
from oidc_link.keys import SigningKeys, TokenError
from oidc_link.models import AuthorizationCode, Identity, RefreshToken, SsoSession
from oidc_link.store import Store
from oidc_link.tokens import (
    Introspection,
    RefreshGrant,
    RefreshIDToken,
    Revocation,
    TokenLifecycle,
)

log = logging.getLogger(__name__)

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
# OIDC Core §3.1.2.1; select_account is answered like login: there is one account per email.
SUPPORTED_PROMPTS = frozenset({"none", "login", "consent", "select_account"})


@dataclass(frozen=True)
class ProtocolRequest:
    """An HTTP request as the protocol sees it, independent of any web framework."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProtocolResponse:
    status: int
    body: str | dict[str, Any]
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


class AuthorizationPageError(Exception):
    """An authorization request we must not redirect back for (unknown client or redirect URI)."""

    def __init__(self, error: OAuth2Error) -> None:
        self.error = error
        super().__init__(error.error)

    @property
    def description(self) -> str:
        return self.error.get_error_description() or self.error.error


@dataclass(frozen=True)
class ValidAuthorization:
    """A validated authorization request: answered from the SSO session when ``signed_in``
    is set, else it becomes a hosted sign-in flow."""

    client: ClientSettings
    parameters: dict[str, str]
    signed_in: Identity | None = None


class InvalidAccessTokenError(Exception):
    """A bearer token at /userinfo that is missing, unknown or expired (RFC 6750 §3.1)."""


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):
    def __init__(self, issuer: str, request: ProtocolRequest) -> None:
        query = f"?{urlencode(request.query)}" if request.query else ""
        super().__init__(request.method, issuer + request.path + query, headers=request.headers)
        self.payload = _Payload(request.query + request.form)
        self._args = dict(request.query)
        self._form = dict(request.form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class OAuthClient(ClientMixin):
    """A registered relying party, as Authlib asks about it."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings

    def get_client_id(self) -> str:
        return self.settings.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OpenID Connect Core §3.1.2.1 makes redirect_uri required: never guess one.
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return None
        allowed = [s for s in scope_to_list(scope) if s in self.settings.scopes]
        return list_to_scope(allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 9700 §4.1.3): no prefix or pattern matching.
        return redirect_uri in self.settings.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.settings.client_secret
        return expected is not None and same(client_secret, expected)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.settings.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        # Every client may refresh; whether it ever gets a refresh token is decided at
        # issue time (TokenLifecycle.offers_refresh).
        return grant_type in ("authorization_code", "refresh_token")


class _IssuedCode:
    """An AuthorizationCode record with the accessors Authlib's grants call."""

    def __init__(self, record: AuthorizationCode, family_id: str) -> None:
        self.record = record
        # The token family everything issued from this code belongs to (tokens.py).
        self.family_id = family_id
        self.code_challenge = record.code_challenge
        self.code_challenge_method = record.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return self.record.scope


def pairwise_subject(salt: str, sector: str, email: str) -> str:
    """A ``sub`` stable per user and client, unlinkable across clients (OIDC Core §8.1)."""
    mac = hmac.new(salt.encode(), f"{sector}\x00{email.lower()}".encode(), hashlib.sha256)
    return "usr_" + base64.b32encode(mac.digest()[:20]).decode().lower()


def claims_for_scope(identity: Identity, scope: str) -> dict[str, Any]:
    """The user claims that the granted scopes allow (OIDC Core §5.4)."""
    scopes = scope_to_list(scope) or []
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims["email"] = identity.email
        claims["email_verified"] = True  # Link verified this address with an SMS code.
    if "profile" in scopes and identity.name:
        claims["name"] = identity.name
    return claims


class _S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1), and required of public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - Authlib reads a class attribute

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: OAuthClient = grant.request.client
        if client.settings.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE: send 'code_challenge' (S256).")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    server: Provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        identity: Identity = request.user
        client: OAuthClient = request.client
        data = request.payload.data
        self.server.store.save_code(
            code,
            AuthorizationCode(
                client_id=client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                subject=self.server.subject_for(client.settings, identity.email),
                identity=identity,
                expires_at=self.server.clock.now() + self.server.settings.lifetimes.code,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            ),
        )

    def query_authorization_code(self, code: str, client: OAuthClient) -> _IssuedCode | None:
        # Taken, not read: a code is spent on its first presentation, right or wrong,
        # so two concurrent redemptions can never both succeed.
        record = self.server.store.take_code(code)
        if record is None:
            self.server.tokens.revoke_spent_code(code)
            return None
        if record.client_id != client.get_client_id():
            return None
        if record.expires_at <= self.server.clock.now():
            return None
        family_id = self.server.tokens.open_family(code)
        return _IssuedCode(record, family_id) if family_id else None

    def delete_authorization_code(self, authorization_code: _IssuedCode) -> None:
        """Nothing to do: query_authorization_code already consumed it."""

    def authenticate_user(self, authorization_code: _IssuedCode) -> Identity:
        return authorization_code.record.identity


class _LinkOpenIDCode(OpenIDCode):
    """OpenID Connect on top of the code grant: request checks and the ID token."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def __call__(self, grant: Any) -> None:
        super().__call__(grant)
        grant.register_hook(
            "after_validate_authorization_request_payload", self._refuse_unsupported
        )

    def _refuse_unsupported(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        prompts = (data.get("prompt") or "").split()
        if set(prompts) - SUPPORTED_PROMPTS:
            raise InvalidRequestError("Unsupported 'prompt' value.")
        if "max_age" in data and not data["max_age"].isdigit():
            raise InvalidRequestError("'max_age' must be a whole number of seconds.")
        if "openid" not in (scope_to_list(data.get("scope")) or []):
            raise InvalidScopeError("This is an OpenID provider: the 'openid' scope is required.")
        # OIDC Core §6: refuse request objects rather than silently ignore them.
        if "request" in data:
            raise RequestNotSupportedError()
        if "request_uri" in data:
            raise RequestURINotSupportedError()
        if data.get("response_mode", "query") != "query":
            raise InvalidRequestError("Only response_mode=query is supported.")
        if grant.request.user is None:
            # Before Authlib's prompt check: prompt=none succeeds only with a usable session.
            grant.request.user = self.provider.session_identity(grant.request)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        # The nonce is the relying party's replay check (OIDC Core §3.1.3.7): we echo it
        # into the ID token and do not reject a repeated one.
        return False

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        return self.provider.id_token(token, request.authorization_code.record)


class Provider(AuthorizationServer):
    def __init__(self, settings: Settings, store: Store, keys: SigningKeys, clock: Clock) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.keys = keys
        self.clock = clock
        self._clients = {c.client_id: OAuthClient(c) for c in settings.clients}
        self.tokens = TokenLifecycle(settings, store, clock)
        self.register_grant(_CodeGrant, [_S256CodeChallenge(required=True), _LinkOpenIDCode(self)])
        self.register_grant(RefreshGrant, [RefreshIDToken(self)])
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self._bearer = BearerTokenGenerator(
            access_token_generator=lambda **_: new_secret(32),
            refresh_token_generator=lambda **_: new_secret(32),
            expires_generator=lambda client, grant_type: settings.lifetimes.access_token,
        )
        self.register_token_generator("default", self._generate_token)

    # Authlib's framework hooks.

    def query_client(self, client_id: str) -> OAuthClient | None:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if request.refresh_token is not None:  # a tokens.FoundToken, from RefreshGrant
            record = request.refresh_token.record
            self.tokens.save(token, record, record.family_id)
        else:
            code: _IssuedCode = request.authorization_code
            self.tokens.save(token, code.record, code.family_id)

    def _generate_token(
        self,
        grant_type: str,
        client: OAuthClient,
        user: Identity | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # A refresh always rotates; a code gives a refresh token only when offered.
        include_refresh_token = include_refresh_token and (
            grant_type == "refresh_token" or self.tokens.offers_refresh(client.settings, scope)
        )
        return self._bearer(grant_type, client, user, scope, expires_in, include_refresh_token)

    def create_oauth2_request(self, request: ProtocolRequest | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return _Request(self.settings.issuer, request)

    def handle_response(
        self, status: int, body: str | dict[str, Any], headers: list[tuple[str, str]]
    ) -> ProtocolResponse:
        return ProtocolResponse(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's signals are not used: logging and metrics hook in elsewhere."""

    # What the web layer calls.

    def validate_authorization(
        self, request: ProtocolRequest, session: SsoSession | None = None
    ) -> ValidAuthorization | ProtocolResponse:
        """Check an authorization request before any page is shown.

        Returns the request (with the session's identity when the session may answer it),
        or an error redirect to the RP. Raises AuthorizationPageError when the client or
        redirect URI cannot be trusted.
        """
        oauth_request = self.create_oauth2_request(request)
        oauth_request.sso_session = session
        grant = self._consent_grant(oauth_request, None)
        if isinstance(grant, ProtocolResponse):
            return grant
        parameters = dict(grant.request.payload.data)
        return ValidAuthorization(grant.request.client.settings, parameters, grant.request.user)

    def session_identity(self, request: OAuth2Request) -> Identity | None:
        """The session's identity if it may answer this request without a new sign-in.

        Not when the RP asks for a fresh login (``prompt=login``, ``max_age`` exceeded or
        0, OIDC Core §3.1.2.1), nor when its ``id_token_hint`` names someone else.
        """
        session: SsoSession | None = getattr(request, "sso_session", None)
        if session is None:
            return None
        data = request.payload.data
        if "login" in (data.get("prompt") or "").split():
            return None
        if "max_age" in data:  # already checked to be digits
            max_age = int(data["max_age"])
            if max_age == 0 or self.clock.now() - session.identity.auth_time > max_age:
                return None
        hint = data.get("id_token_hint")
        client: OAuthClient = request.client
        if hint:
            try:
                claims = self.keys.verify(hint, audience=client.get_client_id(), check_expiry=False)
            except TokenError:
                return None
            if claims.get("sub") != self.subject_for(client.settings, session.identity.email):
                return None
        return session.identity

    def approve(self, parameters: dict[str, str], identity: Identity) -> ProtocolResponse:
        """Issue a code for a finished sign-in and redirect back to the RP."""
        return self._respond(parameters, identity)

    def deny(self, parameters: dict[str, str]) -> ProtocolResponse:
        """Tell the RP the user cancelled: ``access_denied`` (RFC 6749 §4.1.2.1)."""
        return self._respond(parameters, None)

    def _respond(self, parameters: dict[str, str], identity: Identity | None) -> ProtocolResponse:
        # The stored request is validated again: the client's registration may have
        # changed while the user was signing in.
        request = ProtocolRequest("GET", "/authorize", query=list(parameters.items()))
        grant = self._consent_grant(request, identity)
        if isinstance(grant, ProtocolResponse):
            return grant
        return self._with_issuer(self.create_authorization_response(grant.request, identity, grant))

    def _consent_grant(
        self, request: ProtocolRequest, identity: Identity | None
    ) -> Any | ProtocolResponse:
        try:
            return self.get_consent_grant(request, end_user=identity)
        except OAuth2Error as error:
            if not error.redirect_uri:
                raise AuthorizationPageError(error) from None
            return self._with_issuer(self.handle_error_response(None, error))

    def token(self, request: ProtocolRequest) -> ProtocolResponse:
        return self.create_token_response(request)

    def revocation(self, request: ProtocolRequest) -> ProtocolResponse:
        """``POST /revoke`` (RFC 7009), answered by tokens.Revocation."""
        return self.create_endpoint_response(Revocation.ENDPOINT_NAME, request)

    def introspection(self, request: ProtocolRequest) -> ProtocolResponse:
        """``POST /introspect`` (RFC 7662), answered by tokens.Introspection."""
        return self.create_endpoint_response(Introspection.ENDPOINT_NAME, request)

    def userinfo(self, access_token: str | None) -> dict[str, Any]:
        found = self.tokens.find_access_token(access_token) if access_token else None
        if found is None or found.expired or found.revoked:
            raise InvalidAccessTokenError()
        record = found.record
        return {"sub": record.subject, **claims_for_scope(record.identity, record.scope)}

    def subject_for(self, client: ClientSettings, email: str) -> str:
        return pairwise_subject(self.settings.subject_salt, client.client_id, email)

    def id_token(self, token: dict[str, Any], code: AuthorizationCode | RefreshToken) -> str:
        """The ID token of a code exchange, or of a refresh (then without a nonce)."""
        now = self.clock.now()
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": code.subject,
            "aud": code.client_id,
            "iat": now,
            "exp": now + self.settings.lifetimes.id_token,
            "auth_time": code.identity.auth_time,
            "amr": list(code.identity.amr),
        }
        if isinstance(code, AuthorizationCode) and code.nonce:
            claims["nonce"] = code.nonce
        client = self.settings.client(code.client_id)
        alg = client.id_token_signed_response_alg if client else "RS256"
        # OIDC Core §3.1.3.6: the hash that matches the ID token's signing algorithm.
        at_hash = create_half_hash(token["access_token"], alg)
        if at_hash is not None:
            claims["at_hash"] = at_hash.decode()
        claims.update(claims_for_scope(code.identity, token.get("scope", code.scope)))
        return self.keys.sign(claims, alg)

    def _with_issuer(self, response: ProtocolResponse) -> ProtocolResponse:
        """Add ``iss`` to an authorization response redirect (RFC 9207 §2)."""
        location = response.location
        if location:
            response.headers = [
                (
                    k,
                    add_params_to_uri(v, [("iss", self.settings.issuer)])
                    if k.lower() == "location"
                    else v,
                )
                for k, v in response.headers
            ]
        return response
