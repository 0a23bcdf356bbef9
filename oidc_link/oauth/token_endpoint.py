"""``POST /token``'s two grants (RFC 6749 §4.1.3, §6) on our own request and response types.

Authlib authenticates the client and words every error; the code's and the refresh token's
checks run in the scripts that spend them (TokenLifecycle). Nothing here issues codes.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any, Protocol

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from oidc_link.ids import same
from oidc_link.models import AuthorizationCode, RefreshToken
from oidc_link.oauth.claims import OAuthClient
from oidc_link.oauth.grants import REFUSED_CODE, TOKEN_AUTH_METHODS, S256CodeChallenge
from oidc_link.oauth.id_token import IdTokens
from oidc_link.oauth.messages import AuthlibRequest, ProtocolResponse
from oidc_link.oauth.tokens import CLIENT_AUTH_METHODS, TokenLifecycle

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type's name, not a secret
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method's name, not a secret
# RFC 6749 §5.1: the answer is JSON and never cached; the headers Authlib's grants send.
TOKEN_RESPONSE_HEADERS = tuple(BaseGrant.TOKEN_RESPONSE_HEADER)


class TokenIssuer(Protocol):
    """What the endpoint asks of the Provider: Authlib's client authentication (with our
    refinements), Authlib's error answer, and the record that tokens were issued."""

    tokens: TokenLifecycle

    def query_client(self, client_id: str) -> OAuthClient | None: ...

    def authenticate_client(
        self, request: Any, methods: list[str], endpoint: str = "token"
    ) -> OAuthClient: ...

    def handle_error_response(self, request: Any, error: OAuth2Error) -> ProtocolResponse: ...

    def tokens_issued(self, grant_type: str, client_id: str, token: dict[str, Any]) -> None: ...


class TokenEndpoint:
    """The answer to a well-shaped token request (Provider.token checks its shape first).

    Authlib's grant classes ran the same steps through a grant object made per request, its
    extensions' hooks and the server's dispatch; here they are written out, in its order: client
    authentication, the grant's own checks, the tokens (logged and counted), then the ID
    token of an ``openid`` grant (OIDC Core §3.1.3.3, §12.2).
    """

    def __init__(self, issuer: TokenIssuer, id_tokens: IdTokens) -> None:
        self._issuer = issuer
        self._id_tokens = id_tokens

    def answer(self, request: AuthlibRequest) -> ProtocolResponse:
        try:
            grant_type = request.payload.grant_type
            if request.method != "POST":
                raise UnsupportedGrantTypeError(grant_type)
            if grant_type == AUTHORIZATION_CODE:
                token = self._redeem(request)
            elif grant_type == REFRESH_TOKEN:
                token = self._refresh(request)
            else:
                raise UnsupportedGrantTypeError(grant_type)
        except OAuth2Error as error:
            return self._issuer.handle_error_response(request, error)
        return ProtocolResponse(200, token_json(token), list(TOKEN_RESPONSE_HEADERS))

    def _client(self, request: AuthlibRequest, methods: list[str], grant_type: str) -> OAuthClient:
        client = self._basic_client(request, methods)
        if client is None:
            client = self._issuer.authenticate_client(request, methods, "token")
        if not client.check_grant_type(grant_type):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={grant_type}'"
            )
        request.client = client
        return client

    def _basic_client(self, request: AuthlibRequest, methods: list[str]) -> OAuthClient | None:
        """The client that HTTP Basic authenticates when ``client_secret_basic`` is the
        first method tried, as Authlib's ClientAuthentication finds it then (its parse of
        the header, the client's constant-time secret check, the client's method), and no
        conflicting ``client_id`` in the body: the usual request, without Authlib's dispatch
        around it. Anything else is None, and the Provider's client authentication (Authlib's)
        answers it as before, every error included."""
        if methods[0] != CLIENT_SECRET_BASIC:
            return None
        client_id, secret = extract_basic_authorization(request.headers)
        if not client_id or not secret:
            return None
        client = self._issuer.query_client(client_id)
        if (
            client is None
            or not client.check_client_secret(secret)
            or not client.check_endpoint_auth_method(CLIENT_SECRET_BASIC, "token")
        ):
            return None
        named = request.form.get("client_id")
        if named is not None and not same(named, client.get_client_id()):
            return None
        request.auth_method = CLIENT_SECRET_BASIC
        return client

    def _redeem(self, request: AuthlibRequest) -> dict[str, Any]:
        """RFC 6749 §4.1.3: a code is taken, not read: spent on its first presentation,
        right or wrong, so two concurrent redemptions can never both succeed."""
        client = self._client(request, TOKEN_AUTH_METHODS, AUTHORIZATION_CODE)
        form = request.form
        code = form.get("code")
        if code is None:
            raise InvalidRequestError("Missing 'code' in request.")
        tokens = self._issuer.tokens
        redemption, family_id, token = tokens.redeem(
            code,
            client.settings,
            request.payload.redirect_uri,
            S256CodeChallenge.presented(form.get("code_verifier")),
        )
        record = redemption.record
        if record is None:
            raise InvalidGrantError(REFUSED_CODE[redemption.outcome])
        request.user = record.identity
        if record.family_id is None:
            # The redemption script stored the tokens; a code an earlier version issued has
            # its family bound to the account and session only now (one MULTI more).
            tokens.bind_family_now(record, family_id)
        self._issuer.tokens_issued(AUTHORIZATION_CODE, client.settings.client_id, token)
        return self._with_id_token(token, record)

    def _refresh(self, request: AuthlibRequest) -> dict[str, Any]:
        """RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a request refused before the
        rotation spends nothing; from there the rotation script decides."""
        client = self._client(request, CLIENT_AUTH_METHODS, REFRESH_TOKEN)
        value = request.form.get("refresh_token")
        if value is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        record, token = self._issuer.tokens.rotate(value, client.settings, request.payload.scope)
        request.refresh_token = record
        request.user = record.identity
        self._issuer.tokens_issued(REFRESH_TOKEN, client.settings.client_id, token)
        # The refresh's ID token has the first sign-in's auth_time and no nonce.
        return self._with_id_token(token, record)

    def _with_id_token(
        self, token: dict[str, Any], issued_from: AuthorizationCode | RefreshToken
    ) -> dict[str, Any]:
        scope = token.get("scope")
        if scope and "openid" in scope.split():
            token["id_token"] = self._id_tokens.issue(token, issued_from)
        return token


def token_json(token: dict[str, Any]) -> str:
    """``json.dumps(token)``, byte for byte, for a token response (RFC 6749 §5.1), whose
    members are strings and integers: each written by the encoder's own C functions,
    without making an encoder per answer. Any other member goes to ``json.dumps``."""
    members = []
    for name, value in token.items():
        if value.__class__ is str:
            written = encode_basestring_ascii(value)
        elif value.__class__ is int:
            written = int.__repr__(value)
        else:
            return json.dumps(token)
        members.append(encode_basestring_ascii(name) + ": " + written)
    return "{" + ", ".join(members) + "}"
