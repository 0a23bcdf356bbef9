"""The conformance suite's side of a test: a static client that runs the OIDF OP flows.

It mirrors the suite's conditions (CheckServerConfiguration, ValidateIdToken,
ValidateIdTokenSignatureUsingKid, ValidateAtHash, CheckTokenEndpointCacheHeaders, ...)
with explicit checks instead of a client library, on top of tests/relying_party.py's
Browser and transport. Names of the suite's conditions are quoted where a check mirrors one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from tests.conftest import ISSUER, JENNY, POST_SECRET, SHOP_CALLBACK, SHOP_SECRET
from tests.relying_party import Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
SHOP_POST_LOGOUT = "https://shop.example.test/post_logout_redirect"
# The city of the plans' test user (conftest.py), all of an address Link tells.
CITY = "San Francisco"
SECOND_CLIENT = "suite-client2"
SECOND_SECRET = "suite-client2-secret-0123456789"
SECOND_CALLBACK = "https://client2.example.test/callback"
BLOG_CALLBACK = "https://blog.example.test/auth"
KEY_CLIENT = "suite-pkjwt"
KEY_CLIENT_CALLBACK = "https://pkjwt.example.test/callback"
KEY_CLIENT_KID = "suite-client-key-1"
# RFC 7523 §2.2.
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The suite's default scope for its static clients.
SUITE_SCOPE = "openid email profile"
# ValidateIdToken allows this much clock skew on iat/nbf.
CLOCK_SKEW = 5 * 60
# The hash behind at_hash for each signing algorithm (OIDC Core §3.1.3.6).
AT_HASH_DIGESTS = {"RS256": hashlib.sha256, "PS256": hashlib.sha256, "ES256": hashlib.sha256}
# The errors CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface accepts
# (OIDC Core §3.1.2.6).
USER_INTERFACE_ERRORS = {
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
}
# RFC 6749 §5.2: the characters allowed in error and error_description.
ERROR_TEXT = re.compile(r"^[\x20\x21\x23-\x5b\x5d-\x7e]+$")


def random_value(length: int = 32) -> str:
    """A state or nonce the way the suite makes them: URL-safe random characters."""
    return secrets.token_urlsafe(length)[:length]


def b64url_json(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none`` (the suite's SerializeRequestObjectWithNullAlgorithm)."""
    header = b64url(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def with_alg_none(id_token: str) -> str:
    """The suite's ChangeIdTokenToAlgNone: same claims, header alg none, no signature."""
    header, payload, _ = id_token.split(".")
    changed = {**b64url_json(header), "alg": "none"}
    return f"{b64url(json.dumps(changed).encode())}.{payload}."


@dataclass
class CodeFlowResult:
    """One completed authorization: what was sent, what came back, the ID token's claims."""

    request: dict[str, str]
    callback: dict[str, str]
    tokens: dict[str, Any]
    claims: dict[str, Any]


class SuiteClient:
    """A statically registered client of the suite: ``client_secret_basic`` unless told."""

    def __init__(
        self,
        app: Flask,
        clock: FixedClock,
        client_id: str = "shop",
        secret: str | None = SHOP_SECRET,
        redirect_uri: str = SHOP_CALLBACK,
        auth_method: str = "client_secret_basic",
        scope: str = SUITE_SCOPE,
        private_key: RSAKey | None = None,
    ) -> None:
        self.app = app
        self.clock = clock
        self.client_id = client_id
        self.secret = secret
        self.redirect_uri = redirect_uri
        self.auth_method = auth_method
        self.scope = scope
        self.private_key = private_key
        # Where private_key_jwt assertions are addressed (OIDC Core §9: the token endpoint).
        self.assertion_audience: str | None = None
        # The Authlib RP only fetches discovery and the JWKS here, over the same transport.
        self.rp = RelyingParty(app, ISSUER, client_id, redirect_uri, secret, auth_method, scope)
        self.server = self.rp.metadata

    # Server configuration (GetDynamicServerConfiguration, FetchServerKeys).

    def fetch(self, url: str) -> TestResponse:
        parts = urlsplit(url)
        return self.app.test_client().get(
            parts.path, query_string=parts.query, base_url=f"{parts.scheme}://{parts.netloc}"
        )

    def server_jwks(self) -> dict[str, Any]:
        answer = self.fetch(self.server["jwks_uri"])
        assert answer.status_code == 200
        return answer.get_json()

    # The authorization endpoint.

    def authorization_request(self, **extra: str | None) -> dict[str, str]:
        """The suite's CreateAuthorizationEndpointRequestFromClientInformation + state + nonce.

        A parameter given as None is left out of the request.
        """
        request = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": random_value(),
            "nonce": random_value(),
        }
        for name, value in extra.items():
            if value is None:
                request.pop(name, None)
            else:
                request[name] = value
        return request

    def authorize(
        self, browser: Browser, request: dict[str, str], method: str = "GET"
    ) -> TestResponse:
        """Send the browser to the authorization endpoint; our first answer."""
        endpoint = urlsplit(self.server["authorization_endpoint"])
        if method == "POST":
            browser.page = browser.client.post(endpoint.path, data=request, base_url=ISSUER)
            return browser.page
        return browser.get(endpoint.path + "?" + urlencode(request))

    def sign_in(
        self, browser: Browser, console: list[str], answer: TestResponse, email: str = JENNY
    ) -> str:
        """The user signs in on our pages, from the email page that ``answer`` (from the
        authorization endpoint) is; the RP callback."""
        assert is_sign_in_page(answer), "expected the sign-in page"
        browser.submit("/email", email=email)
        done = browser.submit("/code", code=announced_code(console))
        assert done.status_code == 302
        return done.headers["Location"]

    def callback(self, location: str, request: dict[str, str]) -> dict[str, str]:
        """CheckMatchingCallbackParameters, CheckMatchingStateParameter, and RFC 9207 ``iss``."""
        assert location.startswith(request["redirect_uri"] + "?"), location
        params = query_of(location)
        if "state" in request:
            assert params["state"] == request["state"]
        else:
            assert "state" not in params
        assert params["iss"] == self.server["issuer"]
        return params

    def authorization_error(self, answer: TestResponse, request: dict[str, str]) -> str:
        """An error sent back to the registered redirect URI (RFC 6749 §4.1.2.1)."""
        assert answer.status_code == 302
        params = self.callback(answer.headers["Location"], request)
        assert "code" not in params
        return params["error"]

    # The token endpoint.

    def redeem(self, code: str, **form: str) -> TestResponse:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            **form,
        }
        return self.token_request(data)

    def token_request(self, data: dict[str, str]) -> TestResponse:
        """AddBasicAuthClientSecretAuthenticationParameters, the form-based variant, or
        AddPrivateKeyJWTClientAuthenticationToTokenEndpointRequest."""
        auth = None
        if self.auth_method == "client_secret_basic":
            auth = (self.client_id, self.secret)
        elif self.auth_method == "client_secret_post":
            data = {**data, "client_id": self.client_id, "client_secret": self.secret or ""}
        elif self.auth_method == "private_key_jwt" and "client_assertion" not in data:
            data = {
                **data,
                "client_assertion_type": JWT_BEARER_ASSERTION,
                "client_assertion": self.client_assertion(),
            }
        path = urlsplit(self.server["token_endpoint"]).path
        return self.app.test_client().post(path, data=data, auth=auth, base_url=ISSUER)

    def client_assertion(self) -> str:
        """CreateClientAuthenticationAssertionClaims, signed with the client's key (RFC 7523
        §3, OIDC Core §9): iss = sub = client_id, aud, a fresh jti, a short lifetime."""
        assert self.private_key is not None
        now = self.clock.now()
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.assertion_audience or self.server["token_endpoint"],
            "jti": random_value(),
            "iat": now,
            "exp": now + 60,
        }
        header = {"alg": "RS256", "kid": self.private_key.kid}
        return jwt.encode(header, claims, self.private_key)

    def token_response(self, answer: TestResponse) -> dict[str, Any]:
        """CheckTokenEndpointHttpStatus200, ...ReturnedJsonContentType, ...CacheHeaders,
        CheckForAccessTokenValue, ValidateExpiresIn (RFC 6749 §5.1)."""
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.mimetype == "application/json"
        assert "no-store" in answer.headers["Cache-Control"]
        assert answer.headers.get("Pragma", "no-cache") == "no-cache"
        tokens = answer.get_json()
        assert tokens["token_type"].lower() == "bearer"
        assert isinstance(tokens["access_token"], str) and tokens["access_token"]
        assert isinstance(tokens["expires_in"], int) and tokens["expires_in"] > 0
        assert isinstance(tokens["id_token"], str)
        return tokens

    def token_error(self, answer: TestResponse, status: int = 400) -> str:
        """CheckTokenEndpointHttpStatus400, ...ReturnedJsonContentType,
        ValidateErrorFromTokenEndpointResponseError and ...ErrorDescription... (RFC 6749
        §5.2): the error code, after its shape is checked."""
        assert answer.status_code == status
        assert answer.mimetype == "application/json"
        body = answer.get_json()
        assert ERROR_TEXT.match(body["error"])
        if "error_description" in body:
            assert ERROR_TEXT.match(body["error_description"])
        if "error_uri" in body:
            assert urlsplit(body["error_uri"]).scheme in ("http", "https")
        return body["error"]

    # The ID token.

    def validate_id_token(
        self, id_token: str, nonce: str | None, access_token: str | None = None
    ) -> dict[str, Any]:
        """ValidateIdToken, ValidateIdTokenNonce, ValidateIdTokenSignature(UsingKid),
        CheckForSubjectInIdToken, ValidateAtHash (OIDC Core §3.1.3.7, §2)."""
        header = b64url_json(id_token.split(".")[0])
        claims = self.verified_claims(id_token)
        now = self.clock.now()

        assert claims["iss"] == self.server["issuer"]
        audience = claims["aud"]
        if isinstance(audience, list):
            assert self.client_id in audience
            if len(audience) > 1:
                assert claims["azp"] == self.client_id
        else:
            assert audience == self.client_id
        assert isinstance(claims["exp"], int) and claims["exp"] > now
        assert isinstance(claims["iat"], int) and now - CLOCK_SKEW <= claims["iat"] <= now + 5
        assert claims["exp"] > claims["iat"]
        if "nbf" in claims:
            assert claims["nbf"] <= now + CLOCK_SKEW
        if "auth_time" in claims:
            assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= now
        subject = claims["sub"]
        assert isinstance(subject, str) and 0 < len(subject) <= 255 and subject.isascii()
        if nonce is None:
            assert "nonce" not in claims
        else:
            assert claims["nonce"] == nonce
        if access_token is not None and "at_hash" in claims:
            digest = AT_HASH_DIGESTS[header["alg"]](access_token.encode("ascii")).digest()
            assert claims["at_hash"] == b64url(digest[: len(digest) // 2])
        return claims

    def verified_claims(self, id_token: str) -> dict[str, Any]:
        """The signature checked with the JWKS key the header's ``kid`` names, in its alg."""
        header = b64url_json(id_token.split(".")[0])
        assert header["alg"] != "none"
        assert header["alg"] in self.server["id_token_signing_alg_values_supported"]
        keys = [key for key in self.server_jwks()["keys"] if key.get("kid") == header["kid"]]
        assert len(keys) == 1, "the kid must name exactly one key of the JWKS"
        assert keys[0].get("alg", header["alg"]) == header["alg"]
        assert keys[0].get("use", "sig") == "sig"
        key = KeySet.import_key_set({"keys": keys}).keys[0]
        return dict(jwt.decode(id_token, key, algorithms=[header["alg"]]).claims)

    # The userinfo endpoint.

    def userinfo(self, access_token: str, how: str = "get") -> dict[str, Any]:
        """CallUserInfoEndpointWithBearerToken, by GET, POST with the header, or in the body."""
        client = self.app.test_client()
        path = urlsplit(self.server["userinfo_endpoint"]).path
        bearer = {"Authorization": "Bearer " + access_token}
        if how == "get":
            answer = client.get(path, headers=bearer, base_url=ISSUER)
        elif how == "post-header":
            answer = client.post(path, headers=bearer, base_url=ISSUER)
        else:
            answer = client.post(path, data={"access_token": access_token}, base_url=ISSUER)
        assert answer.status_code == 200
        assert answer.mimetype == "application/json"
        return answer.get_json()

    # A whole flow.

    def code_flow(
        self, browser: Browser, console: list[str], **extra: str | None
    ) -> CodeFlowResult:
        """AbstractOIDCCServerTest: authorize (signing in if asked), redeem, validate."""
        request = self.authorization_request(**extra)
        answer = self.authorize(browser, request)
        if is_sign_in_page(answer):
            location = self.sign_in(browser, console, answer)
        else:
            assert answer.status_code == 302
            location = answer.headers["Location"]
        return self.finish(location, request)

    def finish(self, location: str, request: dict[str, str]) -> CodeFlowResult:
        """From the callback on: the code redeemed and the ID token validated."""
        callback = self.callback(location, request)
        tokens = self.token_response(self.redeem(callback["code"]))
        claims = self.validate_id_token(
            tokens["id_token"], request.get("nonce"), tokens["access_token"]
        )
        return CodeFlowResult(request, callback, tokens, claims)


def is_sign_in_page(answer: TestResponse) -> bool:
    """The authorization endpoint answered with the sign-in (email) page of a new flow."""
    page = answer.get_data(as_text=True)
    return answer.status_code == 200 and 'name="email"' in page and 'action="/signin/' in page


def blog_client(app: Flask, clock: FixedClock) -> SuiteClient:
    """The ``client_secret_post`` client of the shared configuration."""
    return SuiteClient(
        app, clock, "blog", POST_SECRET, BLOG_CALLBACK, "client_secret_post", "openid email"
    )


def key_client(app: Flask, clock: FixedClock, private_key: RSAKey) -> SuiteClient:
    """The ``private_key_jwt`` client of the conformance configuration."""
    return SuiteClient(
        app,
        clock,
        KEY_CLIENT,
        None,
        KEY_CLIENT_CALLBACK,
        "private_key_jwt",
        private_key=private_key,
    )


def second_client(app: Flask, clock: FixedClock, scope: str = SUITE_SCOPE) -> SuiteClient:
    """The plans' ``client2``."""
    return SuiteClient(app, clock, SECOND_CLIENT, SECOND_SECRET, SECOND_CALLBACK, scope=scope)
