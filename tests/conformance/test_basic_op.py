"""The OIDF Basic OP plan (``oidcc-basic-certification-test-plan``), module by module.

Each test is named after the suite's module (``oidcc-codereuse`` -> ``test_oidcc_codereuse``)
and asserts what that module asserts, with the plan's variant: response_type=code,
client_secret_basic (client_secret_post for ``oidcc-server-client-secret-post``), default
response mode, static clients (tests/conformance/conftest.py). Where the suite would skip a
module or accept a refusal, the test checks that we refuse or ignore correctly:

| suite module (test) | why not, and what we check |
|---|---|
| oidcc-idtoken-unsigned | static clients; `none` is never offered nor configurable |
| oidcc-scope-address, -phone | no such data: scope not supported, left out of the grant |
| oidcc-request-uri-unsigned-... | request objects: refused, `request_uri_not_supported` |
| oidcc-unsigned-request-object-... | request objects: refused, `request_not_supported` |
| oidcc-ensure-request-object-with-... | object unread: bad query `redirect_uri` -> error page |
| implicit and hybrid plans | `response_types_supported` is `["code"]` only |

Every test runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from flask import Flask
from joserfc.errors import BadSignatureError
from joserfc.jwk import RSAKey

from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.errors import ConfigError
from tests.conformance.suite import (
    CITY,
    JWT_BEARER_ASSERTION,
    KEY_CLIENT,
    SUITE_SCOPE,
    USER_INTERFACE_ERRORS,
    SuiteClient,
    b64url_json,
    blog_client,
    is_sign_in_page,
    key_client,
    random_value,
    second_client,
    unsigned_jwt,
)
from tests.conftest import ISSUER, JENNY, SHOP_SECRET, provider_config
from tests.relying_party import Browser
from tests.sandbox_console import announced_code

# RFC 6749 Appendix A.17: refresh-token = 1*VSCHAR.
VSCHARS = re.compile(r"^[\x20-\x7e]+$")


def signed_in(
    client: SuiteClient, browser: Browser, console: list[str], **extra: str | None
) -> dict[str, Any]:
    """The first authorization of the "twice" modules; the first ID token's claims."""
    return client.code_flow(browser, console, **extra).claims


# --- The first module list (client_secret_basic) ---


def test_oidcc_server(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """Code flow: state and iss come back, the ID token validates, the access token works."""
    # Spec: OIDC Core §3.1.2.5, §3.1.3.3, §3.1.3.7; RFC 9207 §2.
    # CheckServerConfiguration, FetchServerKeys, CheckForKeyIdInServerJWKs (OIDC Core §10.1)
    assert {"authorization_endpoint", "token_endpoint", "issuer"} <= set(client.server)
    assert all("kid" in key for key in client.server_jwks()["keys"])

    result = client.code_flow(browser, console)

    assert set(result.callback) == {"code", "state", "iss"}
    assert result.claims["auth_time"] == live_clock.now()
    assert "at_hash" in result.claims
    assert result.tokens["scope"] == SUITE_SCOPE
    assert client.userinfo(result.tokens["access_token"])["sub"] == result.claims["sub"]


def test_oidcc_response_type_missing(client: SuiteClient, browser: Browser) -> None:
    """No response_type: invalid_request or unsupported_response_type, no code."""
    # Spec: RFC 6749 §3.1.1, §4.1.2.1.
    request = client.authorization_request(response_type=None)

    answer = client.authorize(browser, request)

    assert client.authorization_error(answer, request) in {
        "invalid_request",
        "unsupported_response_type",
    }


def test_oidcc_idtoken_signature(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """The ID token has a kid, is RS256 by default and verifies only with that JWKS key."""
    # Spec: OIDC Core §10.1, §3.1.3.7.
    result = client.code_flow(browser, console)
    id_token = result.tokens["id_token"]
    header, payload, signature = id_token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    # EnsureIdTokenContainsKid (OIDC Core §10.1), EnsureIdTokenSignatureIsRS256 (the default)
    assert b64url_json(header)["kid"]
    assert b64url_json(header)["alg"] == "RS256"
    assert client.verified_claims(id_token)["sub"] == result.claims["sub"]
    with pytest.raises(BadSignatureError):
        client.verified_claims(f"{header}.{payload}.{flipped}")


def test_oidcc_idtoken_rs256(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """An RS256 client's ID token is RS256, signed by an RSA key of the JWKS."""
    # Spec: OIDC Core §15.1: RS256 is mandatory to implement.
    result = client.code_flow(browser, console)
    header = b64url_json(result.tokens["id_token"].split(".")[0])

    assert header["alg"] == "RS256"
    (key,) = [k for k in client.server_jwks()["keys"] if k["kid"] == header["kid"]]
    assert key["kty"] == "RSA"


def test_oidcc_idtoken_unsigned(client: SuiteClient) -> None:
    """Static clients: alg none is never offered and cannot be configured."""
    # Spec: OIDC Core §3.1.3.7.
    assert "none" not in client.server["id_token_signing_alg_values_supported"]
    config = provider_config()
    clients = config["clients"]
    assert isinstance(clients, list)
    clients[0]["id_token_signed_response_alg"] = "none"

    with pytest.raises(ConfigError, match="id_token_signed_response_alg"):
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def test_oidcc_userinfo_get(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """Userinfo by GET with the bearer header answers JSON with the ID token's sub."""
    # Spec: OIDC Core §5.3.1, §5.3.2.
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"], "get")

    assert userinfo["sub"] == result.claims["sub"]
    assert userinfo["email"] == JENNY


def test_oidcc_userinfo_post_header(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """Userinfo by POST with the bearer header answers the ID token's sub."""
    # Spec: OIDC Core §5.3.1.
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"], "post-header")

    assert userinfo["sub"] == result.claims["sub"]


def test_oidcc_userinfo_post_body(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """Userinfo by POST with the token in the body answers the ID token's sub."""
    # Spec: RFC 6750 §2.2.
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"], "post-body")

    assert userinfo["sub"] == result.claims["sub"]


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """A code flow without nonce succeeds, and the ID token has no nonce."""
    # Spec: OIDC Core §3.1.2.1: nonce is optional in the code flow.
    result = client.code_flow(browser, console, nonce=None)

    assert "nonce" not in result.claims


def test_oidcc_scope_profile(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str]
) -> None:
    """scope=openid profile: userinfo has the profile claims we hold, and sub."""
    # Spec: OIDC Core §5.4.
    client = SuiteClient(app, live_clock, scope="openid profile")
    assert "profile" in client.server["scopes_supported"]
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"])

    assert userinfo == {"sub": result.claims["sub"], "name": "Jenny Rosen"}


def test_oidcc_scope_email(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str]
) -> None:
    """scope=openid email: userinfo returns email and email_verified (OIDC Core §5.4)."""
    # Spec: OIDC Core §5.4.
    client = SuiteClient(app, live_clock, scope="openid email")
    assert "email" in client.server["scopes_supported"]
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"])

    assert userinfo == {"sub": result.claims["sub"], "email": JENNY, "email_verified": True}


def assert_unsupported_scope_left_out(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str], scope: str
) -> None:
    """scope=openid email: userinfo has email and email_verified, and sub."""
    client = SuiteClient(app, live_clock, scope=f"openid {scope}")
    assert scope not in client.server["scopes_supported"]

    result = client.code_flow(browser, console)

    assert result.tokens["scope"] == "openid"  # RFC 6749 §3.3: the granted scope, told
    userinfo = client.userinfo(result.tokens["access_token"])
    assert userinfo == {"sub": result.claims["sub"]}
    assert not {"address", "phone_number", "phone_number_verified"} & set(result.claims)


def test_oidcc_scope_address(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str]
) -> None:
    """scope=openid address: userinfo has the address Link tells (its locality), and sub."""
    # Spec: OIDC Core §5.4, §5.1.1.
    client = SuiteClient(app, live_clock, scope="openid address")
    assert "address" in client.server["scopes_supported"]
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"])

    assert result.tokens["scope"] == "openid address"
    assert userinfo == {"sub": result.claims["sub"], "address": {"locality": CITY}}


def test_oidcc_scope_phone(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str]
) -> None:
    """scope=openid phone: unsupported, so left out of the grant; no claim made up."""
    # Spec: RFC 6749 §3.3.
    assert_unsupported_scope_left_out(app, live_clock, browser, console, "phone")


def test_oidcc_scope_all(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str]
) -> None:
    """All standard scopes: success, with the claims of the scopes we support."""
    # Spec: OIDC Core §5.4; RFC 6749 §3.3.
    client = SuiteClient(app, live_clock, scope="openid profile email address phone")
    result = client.code_flow(browser, console)

    userinfo = client.userinfo(result.tokens["access_token"])

    assert set(result.tokens["scope"].split()) == {"openid", "profile", "email", "address"}
    assert userinfo == {
        "sub": result.claims["sub"],
        "name": "Jenny Rosen",
        "email": JENNY,
        "email_verified": True,
        "address": {"locality": CITY},
    }


def test_oidcc_ensure_other_scope_order_succeeds(
    app: Flask, live_clock: FixedClock, console: list[str]
) -> None:
    """The same scopes in another order (openid not first) work the same."""
    # Spec: RFC 6749 §3.3: scope is an unordered list.
    subjects = []
    for scope in ("openid email", "email openid"):
        client = SuiteClient(app, live_clock, scope=scope)
        result = client.code_flow(Browser(app, ISSUER), console)
        assert client.userinfo(result.tokens["access_token"])["email"] == JENNY
        subjects.append(result.claims["sub"])

    assert subjects[0] == subjects[1]


def assert_display_hint_accepted(
    client: SuiteClient, browser: Browser, console: list[str], display: str
) -> None:
    """The request succeeds and the user gets our (one) sign-in page: display is a hint
    (OIDC Core §3.1.2.1)."""
    request = client.authorization_request(display=display)
    answer = client.authorize(browser, request)
    assert is_sign_in_page(answer)
    assert browser.soup().find("input", attrs={"name": "email"}) is not None

    location = client.sign_in(browser, console, answer)

    assert client.finish(location, request).claims["sub"]


def test_oidcc_display_page(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """display=page is accepted: the sign-in page is shown and the flow completes."""
    # Spec: OIDC Core §3.1.2.1: display is a hint.
    assert_display_hint_accepted(client, browser, console, "page")


def test_oidcc_display_popup(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """display=popup is accepted: the sign-in page is shown and the flow completes."""
    # Spec: OIDC Core §3.1.2.1: display is a hint.
    assert_display_hint_accepted(client, browser, console, "popup")


def test_oidcc_prompt_login(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """Signed in, prompt=login asks to sign in again: same sub, later auth_time."""
    # Spec: OIDC Core §3.1.2.1.
    first = signed_in(client, browser, console)
    live_clock.advance(5)
    request = client.authorization_request(prompt="login")

    answer = client.authorize(browser, request)
    assert is_sign_in_page(answer)  # not a redirect with a code
    second = client.finish(client.sign_in(browser, console, answer), request).claims

    assert second["sub"] == first["sub"]
    assert second["auth_time"] == first["auth_time"] + 5


def test_oidcc_prompt_none_not_logged_in(client: SuiteClient, browser: Browser) -> None:
    """prompt=none without a session: an error needing a user interface."""
    # Spec: OIDC Core §3.1.2.1, §3.1.2.6.
    request = client.authorization_request(prompt="none")

    answer = client.authorize(browser, request)

    assert client.authorization_error(answer, request) in USER_INTERFACE_ERRORS


def test_oidcc_prompt_none_logged_in(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """Signed in, prompt=none answers at once: same sub, same auth_time."""
    # Spec: OIDC Core §3.1.2.1.
    first = signed_in(client, browser, console)
    live_clock.advance(5)
    request = client.authorization_request(prompt="none")

    answer = client.authorize(browser, request)

    assert answer.status_code == 302
    second = client.finish(answer.headers["Location"], request).claims
    assert second["sub"] == first["sub"]
    assert second["auth_time"] == first["auth_time"]


def test_oidcc_max_age_1(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """max_age=1 two seconds after sign-in asks again; the new auth_time is later and recent."""
    # Spec: OIDC Core §3.1.2.1, §2 (auth_time).
    first = signed_in(client, browser, console)
    live_clock.advance(2)  # WaitFor2Seconds
    request = client.authorization_request(max_age="1")

    answer = client.authorize(browser, request)
    assert is_sign_in_page(answer)  # ExpectSecondLoginPage
    second = client.finish(client.sign_in(browser, console, answer), request).claims

    # CheckIdTokenAuthTimeClaimPresentDueToMaxAge, CheckSecondIdTokenAuthTimeIsLaterIfPresent,
    # CheckIdTokenAuthTimeIsRecentIfPresent
    assert second["auth_time"] > first["auth_time"]
    assert live_clock.now() - second["auth_time"] <= 1


def test_oidcc_max_age_10000(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """Within max_age=10000 no new sign-in; auth_time is present and unchanged."""
    # Spec: OIDC Core §3.1.2.1, §2 (auth_time).
    first = signed_in(client, browser, console)
    live_clock.advance(60)
    request = client.authorization_request(max_age="10000")

    answer = client.authorize(browser, request)

    assert answer.status_code == 302
    second = client.finish(answer.headers["Location"], request).claims
    assert second["auth_time"] == first["auth_time"]
    assert second["sub"] == first["sub"]


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """An unknown authorization parameter is ignored and the flow succeeds."""
    # Spec: OIDC Core §3.1.2.1; RFC 6749 §3.1: unknown parameters are ignored.
    result = client.code_flow(browser, console, extra_param="foobar")

    assert result.claims["sub"]
    assert "extra_param" not in result.callback


def test_oidcc_id_token_hint(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """prompt=none with the first ID token as hint answers at once, same sub and auth_time."""
    # Spec: OIDC Core §3.1.2.1.
    first = client.code_flow(browser, console)
    live_clock.advance(5)
    request = client.authorization_request(prompt="none", id_token_hint=first.tokens["id_token"])

    answer = client.authorize(browser, request)

    assert answer.status_code == 302
    second = client.finish(answer.headers["Location"], request).claims
    assert second["sub"] == first.claims["sub"]
    assert second["auth_time"] == first.claims["auth_time"]


def test_oidcc_login_hint(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """login_hint prefills the email, and submitting it signs that user in."""
    # Spec: OIDC Core §3.1.2.1.
    request = client.authorization_request(login_hint="sam@example.com")
    assert is_sign_in_page(client.authorize(browser, request))
    assert browser.soup().find("input", attrs={"name": "email"})["value"] == "sam@example.com"

    browser.submit("/email")  # the prefilled value, unchanged
    done = browser.submit("/code", code=announced_code(console))

    result = client.finish(done.headers["Location"], request)
    assert client.userinfo(result.tokens["access_token"])["email"] == "sam@example.com"


def test_oidcc_ui_locales(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """ui_locales we don't offer (the suite's 'se') is no error: the flow succeeds."""
    # Spec: OIDC Core §3.1.2.1: an unsupported locale is not an error.
    assert "se" not in client.server["ui_locales_supported"]

    result = client.code_flow(browser, console, ui_locales="se")

    assert result.claims["sub"]


def test_oidcc_claims_locales(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """claims_locales is no error: the flow succeeds and userinfo answers."""
    # Spec: OIDC Core §5.2.
    result = client.code_flow(browser, console, claims_locales="se")

    assert client.userinfo(result.tokens["access_token"])["email"] == JENNY


def test_oidcc_ensure_request_with_acr_values_succeeds(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """acr_values succeeds, and acr is one of the requested values we advertise."""
    # Spec: OIDC Core §3.1.2.1, §15.1.
    # OIDCCAddAcrValuesToAuthorizationEndpointRequest
    advertised = client.server.get("acr_values_supported")
    requested = advertised or ["1", "2"]

    result = client.code_flow(browser, console, acr_values=" ".join(requested))

    # ValidateIdTokenACRClaimAgainstAcrValuesRequest: a SHOULD, so required of us only for
    # values we advertise.
    if advertised:
        assert result.claims["acr"] in requested
    assert isinstance(result.claims.get("acr", ""), str)


def test_oidcc_codereuse(client: SuiteClient, browser: Browser, console: list[str]) -> None:
    """A code redeemed a second time at once gets invalid_grant."""
    # Spec: RFC 6749 §4.1.2, §5.2.
    request = client.authorization_request()
    location = client.sign_in(browser, console, client.authorize(browser, request))
    code = client.callback(location, request)["code"]
    client.token_response(client.redeem(code))

    again = client.redeem(code)

    assert client.token_error(again) == "invalid_grant"


def test_oidcc_codereuse_30seconds(
    client: SuiteClient, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """A code redeemed again 30 s later gets invalid_grant and its access token is revoked."""
    # Spec: RFC 6749 §4.1.2: tokens issued from a reused code SHOULD be revoked.
    request = client.authorization_request()
    location = client.sign_in(browser, console, client.authorize(browser, request))
    code = client.callback(location, request)["code"]
    tokens = client.token_response(client.redeem(code))
    live_clock.advance(30)  # WaitFor30Seconds

    again = client.redeem(code)

    assert client.token_error(again) == "invalid_grant"
    # CallProtectedResourceWithBearerTokenExpectingError
    answer = client.app.test_client().get(
        "/userinfo",
        headers={"Authorization": "Bearer " + tokens["access_token"]},
        base_url=ISSUER,
    )
    assert answer.status_code == 401


def test_oidcc_ensure_registered_redirect_uri(client: SuiteClient, browser: Browser) -> None:
    """An unregistered redirect_uri gets an error page, never a redirect."""
    # Spec: OIDC Core §3.1.2.1; RFC 6749 §4.1.2.1.
    bad = f"https://shop.example.test/{random_value(10)}/callback"
    request = client.authorization_request(redirect_uri=bad)

    answer = client.authorize(browser, request)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.mimetype == "text/html"
    assert "redirect" in answer.get_data(as_text=True).lower()


def test_oidcc_ensure_redirect_uri_in_authorization_request(
    client: SuiteClient, browser: Browser
) -> None:
    """A missing redirect_uri gets an error page, never a redirect."""
    # Spec: OIDC Core §3.1.2.1: redirect_uri is required.
    request = client.authorization_request(redirect_uri=None)

    answer = client.authorize(browser, request)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "redirect_uri" in answer.get_data(as_text=True)


def test_oidcc_ensure_post_request_succeeds(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """The authorization request sent by form POST succeeds like GET."""
    # Spec: OIDC Core §3.1.2.1: GET and POST.
    request = client.authorization_request()

    answer = client.authorize(browser, request, method="POST")

    result = client.finish(client.sign_in(browser, console, answer), request)
    assert result.claims["nonce"] == request["nonce"]


# --- The client_secret_post variant ---


def test_oidcc_server_client_secret_post(
    app: Flask, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """oidcc-server with client_secret_post; that client's basic auth is refused."""
    # Spec: RFC 6749 §2.3.1.
    client = blog_client(app, live_clock)

    result = client.code_flow(browser, console)

    assert result.claims["aud"] == "blog"
    assert client.userinfo(result.tokens["access_token"])["sub"] == result.claims["sub"]
    request = client.authorization_request()
    location = client.authorize(browser, request).headers["Location"]  # the session answers
    code = client.callback(location, request)["code"]
    as_basic = SuiteClient(
        app, live_clock, "blog", client.secret, client.redirect_uri, "client_secret_basic"
    )
    assert as_basic.token_error(as_basic.redeem(code), 401) == "invalid_client"


# --- The private_key_jwt variant (the suite's ClientAuthType private_key_jwt) ---


def test_oidcc_server_private_key_jwt(
    app: Flask,
    browser: Browser,
    console: list[str],
    live_clock: FixedClock,
    client_private_key: RSAKey,
) -> None:
    """oidcc-server with private_key_jwt; a replayed assertion is invalid_client."""
    # Spec: OIDC Core §9; RFC 7523 §3.
    client = key_client(app, live_clock, client_private_key)
    assert "private_key_jwt" in client.server["token_endpoint_auth_methods_supported"]

    result = client.code_flow(browser, console)

    assert result.claims["aud"] == KEY_CLIENT
    assert client.userinfo(result.tokens["access_token"])["sub"] == result.claims["sub"]
    request = client.authorization_request()
    location = client.authorize(browser, request).headers["Location"]  # the session answers
    code = client.callback(location, request)["code"]
    assertion = client.client_assertion()
    first = client.token_request(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": assertion,
        }
    )
    assert first.status_code == 200
    replayed = client.app.test_client().post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "unused",
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": assertion,
        },
        base_url=ISSUER,
    )
    assert client.token_error(replayed, 401) == "invalid_client"


def test_oidcc_ensure_client_assertion_with_iss_aud_succeeds(
    app: Flask,
    browser: Browser,
    console: list[str],
    live_clock: FixedClock,
    client_private_key: RSAKey,
) -> None:
    """A client assertion with the issuer as aud is accepted."""
    # Spec: RFC 7523 §3.
    client = key_client(app, live_clock, client_private_key)
    client.assertion_audience = client.server["issuer"]

    result = client.code_flow(browser, console)

    assert result.claims["aud"] == KEY_CLIENT


# --- The last module list (client_secret_basic again) ---


def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
    client: SuiteClient, browser: Browser
) -> None:
    """request_uri is refused with request_uri_not_supported, at the redirect URI."""
    # Spec: OIDC Core §6.3.
    assert client.server["request_uri_parameter_supported"] is False
    inside = client.authorization_request()
    # BuildRequestObjectByReferenceRedirectToAuthorizationEndpoint: state only inside.
    request = {key: inside[key] for key in ("response_type", "client_id", "scope", "redirect_uri")}
    request["request_uri"] = "https://suite.example.test/requests/" + random_value(12)

    answer = client.authorize(browser, request)

    assert client.authorization_error(answer, request) == "request_uri_not_supported"


def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    client: SuiteClient, browser: Browser
) -> None:
    """An unsigned request object is refused with request_not_supported."""
    # Spec: OIDC Core §6.1.
    assert client.server["request_parameter_supported"] is False
    inside = client.authorization_request()
    request = {key: inside[key] for key in ("response_type", "client_id", "scope", "redirect_uri")}
    request["request"] = unsigned_jwt({**inside, "iss": client.client_id, "aud": ISSUER})

    answer = client.authorize(browser, request)

    assert client.authorization_error(answer, request) == "request_not_supported"


def test_oidcc_claims_essential(
    app: Flask, live_clock: FixedClock, browser: Browser, console: list[str]
) -> None:
    """name requested as an essential userinfo claim: success, and userinfo has name."""
    # Spec: OIDC Core §5.5.
    client = SuiteClient(app, live_clock, scope="openid")
    claims = '{"userinfo": {"name": {"essential": true}}}'

    result = client.code_flow(browser, console, claims=claims)

    assert client.userinfo(result.tokens["access_token"])["name"] == "Jenny Rosen"


def test_oidcc_ensure_request_object_with_redirect_uri(
    client: SuiteClient, browser: Browser
) -> None:
    """Request object unread: the query's invalid redirect_uri gets an error page."""
    # Spec: RFC 6749 §4.1.2.1: never redirect to an unregistered URI.
    inside = client.authorization_request()
    request = {key: inside[key] for key in ("response_type", "client_id", "scope")}
    request["request"] = unsigned_jwt({**inside, "iss": client.client_id, "aud": ISSUER})
    request["redirect_uri"] = "https://evil.example.test/callback"  # AddInvalidRedirectUri...

    answer = client.authorize(browser, request)

    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_oidcc_refresh_token(app: Flask, live_clock: FixedClock, console: list[str]) -> None:
    """Refresh: new tokens, ID token claims kept (OIDC Core 12.2), bound to its client."""
    # Spec: OIDC Core §12.2; RFC 6749 §6, §10.10.
    offline = "openid email offline_access"
    client = SuiteClient(app, live_clock, scope=offline)
    # EnsureServerConfigurationSupportsRefreshToken
    assert "refresh_token" in client.server["grant_types_supported"]
    # AddPromptConsentToAuthorizationEndpointRequestIfScopeContainsOfflineAccess (OIDC Core §11)
    first = client.code_flow(Browser(app, ISSUER), console, prompt="consent")
    refresh_token = first.tokens["refresh_token"]
    # EnsureRefreshTokenContainsAllowedCharactersOnly (RFC 6749 A.17); EnsureMinimumRefresh
    # TokenLength: at least 128 bits even if written in base64url (RFC 6749 §10.10).
    assert VSCHARS.match(refresh_token)
    assert len(refresh_token) >= 22
    live_clock.advance(60)

    refreshed = client.token_response(
        client.token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": offline}
        )
    )
    claims = client.validate_id_token(refreshed["id_token"], None, refreshed["access_token"])

    # EnsureAccessTokenContainsAllowedCharactersOnly (RFC 6749 A.12), ...ValuesAreDifferent
    assert VSCHARS.match(refreshed["access_token"])
    assert refreshed["access_token"] != first.tokens["access_token"]
    # CompareIdTokenClaims (OIDC Core §12.2)
    for name in ("iss", "sub", "aud", "auth_time"):
        assert claims[name] == first.claims[name], name
    assert claims.get("azp") == first.claims.get("azp")
    assert claims["iat"] == first.claims["iat"] + 60
    assert client.userinfo(refreshed["access_token"])["sub"] == first.claims["sub"]

    other = second_client(app, live_clock, scope=offline)
    theirs = other.code_flow(Browser(app, ISSUER), console, prompt="consent")
    stolen = client.token_request(
        {"grant_type": "refresh_token", "refresh_token": theirs.tokens["refresh_token"]}
    )
    assert client.token_error(stolen) == "invalid_grant"


def test_oidcc_ensure_request_with_valid_pkce_succeeds(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """A confidential client using S256 PKCE succeeds with its verifier."""
    # Spec: RFC 7636 §4.
    verifier = random_value(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    request = client.authorization_request(
        code_challenge=challenge.rstrip(b"=").decode(), code_challenge_method="S256"
    )
    location = client.sign_in(browser, console, client.authorize(browser, request))
    code = client.callback(location, request)["code"]

    tokens = client.token_response(client.redeem(code, code_verifier=verifier))

    assert client.validate_id_token(tokens["id_token"], request["nonce"], tokens["access_token"])
