"""/authorize's checks of a code request (oauth/code_request.py) against Authlib's own
``get_consent_grant``, whose grant registers the extensions' hooks on every request: the
same grant or the same error (class, code, description, redirect URI, state, status) for
valid requests and for each fault an authorization request can have, one at a time."""

from __future__ import annotations

import itertools
from typing import Any
from unittest import mock

import pytest
import redis
from authlib.oauth2 import AuthorizationServer, OAuth2Error

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.oauth import Provider
from oidc_link.oauth.code_request import CodeRequestChecks, RecordedHooks, record_hooks
from oidc_link.oauth.grants import CodeGrant
from oidc_link.oauth.messages import ProtocolRequest
from oidc_link.services import build_services
from tests.conftest import SHOP_CALLBACK, SPA_CALLBACK

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
VALID = {
    "shop": [
        ("response_type", "code"),
        ("client_id", "shop"),
        ("redirect_uri", SHOP_CALLBACK),
        ("scope", "openid email profile"),
        ("state", "st"),
        ("nonce", "n"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ],
    "spa": [
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", SPA_CALLBACK),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ],
    "blog": [
        ("response_type", "code"),
        ("client_id", "blog"),
        ("redirect_uri", "https://blog.example.test/auth"),
        ("scope", "openid email"),
        ("state", "x y"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ],
}

# Each a change to a valid request: (name, value) sets the first value (None: removes it),
# ("+name", value) adds another.
FAULTS: list[list[tuple[str, str | None]]] = [
    [],
    [("response_type", None)],
    [("response_type", "token")],
    [("response_type", "code id_token")],
    [("response_type", 'co"de')],
    [("response_type", "")],
    [("client_id", None)],
    [("client_id", "nobody")],
    [("client_id", "")],
    [("redirect_uri", None)],
    [("redirect_uri", "https://evil.example.test/cb")],
    [("redirect_uri", 'https://shop.example.test/callback"é')],
    [("+redirect_uri", SHOP_CALLBACK)],
    [("+response_type", "code")],
    [("+client_id", "shop")],
    [("+scope", "openid")],
    [("+state", "again")],
    [("state", None)],
    [("state", "")],
    [("scope", None)],
    [("scope", "")],
    [("scope", "email")],
    [("scope", "openid address")],
    [("scope", "openid unknown")],
    [("scope", "openid offline_access")],
    [("+nonce", "m")],
    [("+prompt", "login"), ("prompt", "login")],
    [("code_challenge", None)],
    [("code_challenge", None), ("code_challenge_method", None)],
    [("code_challenge_method", None)],
    [("code_challenge_method", "plain")],
    [("code_challenge", "short")],
    [("code_challenge", "x" * 42 + "=")],
    [("code_challenge", "~" * 43)],
    [("code_challenge", "a" * 129)],
    [("prompt", "none")],
    [("prompt", "login")],
    [("prompt", "consent")],
    [("prompt", "select_account")],
    [("prompt", "none login")],
    [("prompt", "create")],
    [("prompt", "")],
    [("max_age", "0")],
    [("max_age", "60")],
    [("max_age", "-1")],
    [("max_age", "1.5")],
    [("request", "eyJ.x.y")],
    [("request_uri", "https://rp.example.test/r")],
    [("registration", "{}")],
    [("response_mode", "form_post")],
    [("response_mode", "fragment")],
    [("response_mode", "query")],
    [("claims", "{")],
    [("claims", '{"id_token": {"acr": {"essential": true, "value": "urn:other"}}}')],
    [("claims", '{"id_token": {"sub": {"value": "someone"}}}')],
    [("claims", '{"userinfo": {"email": null}}')],
    [("ui_locales", "fr")],
    [("login_hint", "jenny@example.com")],
    [("id_token_hint", "not-a-token")],
    [("oidc_link:pushed", "1")],
    [("nonce", None)],
]


def _request(client: str, fault: list[tuple[str, str | None]]) -> ProtocolRequest:
    pairs = list(VALID[client])
    for name, value in fault:
        if name.startswith("+"):
            pairs.append((name[1:], value or ""))
            continue
        at = next((i for i, (k, _) in enumerate(pairs) if k == name), None)
        if value is None:
            if at is not None:
                del pairs[at]
        elif at is None:
            pairs.append((name, value))
        else:
            pairs[at] = (name, value)
    return ProtocolRequest("GET", "/authorize", query=pairs)


@pytest.fixture
def provider(settings: Settings, embedded_redis: redis.Redis, clock: FixedClock) -> Provider:
    services = build_services(
        settings, clock=clock, redis_client=embedded_redis, announce=lambda _: None
    )
    return services.provider


def _authlib_grant(provider: Provider, request: Any) -> Any:
    """The grant as Authlib makes it: its extensions register their hooks on it."""
    if request.payload.response_type == "code":
        return AuthorizationServer.get_authorization_grant(provider, request)
    return Provider.get_authorization_grant(provider, request)


def _outcome(provider: Provider, asked: ProtocolRequest, *, authlib: bool) -> tuple[Any, ...]:
    try:
        if authlib:
            with mock.patch.object(
                provider, "get_authorization_grant", lambda r: _authlib_grant(provider, r)
            ):
                grant = AuthorizationServer.get_consent_grant(provider, asked, None)
        else:
            grant = provider.get_consent_grant(asked, None)
    except OAuth2Error as error:
        return (
            type(error),
            error.error,
            error.get_error_description(),
            error.redirect_uri,
            error.state,
            error.status_code,
        )
    request = grant.request
    return (
        type(grant),
        grant.redirect_uri,
        grant.prompt,
        request.client.get_client_id(),
        request.scope,
        request.user,
        dict(request.payload.data),
    )


@pytest.mark.parametrize(("client", "fault"), list(itertools.product(VALID, FAULTS)))
def test_a_code_request_gets_the_grant_or_the_error_authlibs_own_path_gives(
    provider: Provider, client: str, fault: list[tuple[str, str | None]]
) -> None:
    asked = _request(client, fault)

    assert _outcome(provider, asked, authlib=False) == _outcome(provider, asked, authlib=True)


def test_the_grants_hooks_are_the_ones_its_extensions_register_on_authlibs_grant(
    provider: Provider,
) -> None:
    for scope, registered in (("openid email", 6), ("email", 4)):
        asked = _request("shop", [("scope", scope)])
        request = provider.create_oauth2_request(asked)
        ours = provider.get_authorization_grant(request)
        authlibs = AuthorizationServer.get_authorization_grant(provider, request)

        assert isinstance(ours._hooks, RecordedHooks)
        kinds = {kind: set(hooks) for kind, hooks in ours._hooks.items() if hooks}
        assert kinds == dict(authlibs._hooks)
        assert sum(len(hooks) for hooks in ours._hooks.values()) == registered
        assert ours._hooks["after_authorization_response"] == ()


def test_hooks_are_recorded_in_the_order_the_extensions_register_them() -> None:
    calls: list[str] = []

    def first(grant: Any) -> None:
        grant.register_hook("after_x", lambda *_: calls.append("first"))

    def second(grant: Any) -> None:
        grant.register_hook("after_x", lambda *_: calls.append("second"))
        if grant.request.payload.scope == "openid":
            grant.register_hook("after_y", lambda *_: calls.append("openid"))

    hooks = record_hooks([first, second], "openid")
    for hook in hooks["after_x"]:
        hook()

    assert calls == ["first", "second"]
    assert len(hooks["after_y"]) == 1
    assert record_hooks([first, second], "")["after_y"] == ()


def test_of_two_faults_the_check_registered_first_answers(provider: Provider) -> None:
    # A repeated nonce (OneValueEach) and an unsupported prompt (the OpenID checks): in
    # every process, the repeated parameter.
    asked = _request("shop", [("+nonce", "m"), ("prompt", "create")])

    with pytest.raises(OAuth2Error) as refused:
        provider.get_consent_grant(asked, None)

    assert refused.value.get_error_description() == "The parameter 'nonce' is repeated."


def test_a_grant_that_validates_its_own_way_is_refused_when_the_provider_is_made() -> None:
    class OwnChecks(CodeGrant):
        def validate_authorization_request(self) -> str:
            return "https://rp.example.test/cb"

    with pytest.raises(TypeError, match="validate_authorization_request"):
        CodeRequestChecks(OwnChecks, [])
