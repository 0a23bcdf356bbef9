"""The ``claims`` request parameter (OIDC Core §5.5), ``acr`` and ``acr_values`` (§3.1.2.1).

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask import Flask

from oidc_link.oauth.claims import ACR_SMS_OTP
from tests.conftest import ISSUER, JENNY, ON_REDIS_CLUSTER, POST_SECRET, SHOP_CALLBACK, SHOP_SECRET
from tests.relying_party import AuthorizationRequest, Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


def sign_in(
    browser: Browser, rp: RelyingParty, console: list[str], **extra: str
) -> tuple[AuthorizationRequest, str]:
    """The whole user journey; returns the authorization request and the RP callback URL."""
    request = rp.authorization_request(**extra)
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    assert answer.status_code == 302
    return request, answer.headers["Location"]


def tokens(
    browser: Browser, rp: RelyingParty, console: list[str], claims: dict[str, Any], **extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sign in with this claims request; the token response and the validated ID token."""
    request, callback = sign_in(browser, rp, console, claims=json.dumps(claims), **extra)
    token = rp.exchange(callback, request)
    return token, rp.validate_id_token(token, request.nonce)


def userinfo(rp: RelyingParty, token: dict[str, Any]) -> dict[str, Any]:
    answer = rp.http.get(
        ISSUER + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert answer.status_code == 200
    return answer.json()


def unverified_claims(id_token: str) -> dict[str, Any]:
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def shop_with(app: Flask, scope: str) -> RelyingParty:
    return RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET, scope=scope)


def test_a_claim_asked_for_in_the_id_token_is_there_without_its_scope(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    shop = shop_with(app, "openid")

    token, claims = tokens(browser, shop, console, {"id_token": {"email": None}})

    assert token["scope"] == "openid"
    assert claims["email"] == JENNY
    # Claim by claim: email_verified was not asked for, nor name.
    assert "email_verified" not in claims
    assert "name" not in claims
    # Asked for in the ID token only: /userinfo keeps to the scope.
    assert set(userinfo(shop, token)) == {"sub"}


def test_a_claim_asked_for_at_userinfo_is_there_and_not_in_the_id_token(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    shop = shop_with(app, "openid")
    asked = {"userinfo": {"name": None, "email_verified": None, "acr": None, "auth_time": None}}

    token, claims = tokens(browser, shop, console, asked)
    info = userinfo(shop, token)

    assert info == {
        "sub": claims["sub"],
        "name": "Jenny Rosen",
        "email_verified": True,
        "acr": ACR_SMS_OTP,
        "auth_time": claims["auth_time"],
    }
    assert "name" not in claims
    assert "email_verified" not in claims


def test_claims_never_go_beyond_the_scopes_the_client_is_registered_for(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    """The blog is registered for openid and email only: no name, even when essential."""
    blog = RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        "client_secret_post",
        scope="openid",
    )
    asked = {"id_token": {"name": {"essential": True}, "email": None}, "userinfo": {"name": None}}

    token, claims = tokens(browser, blog, console, asked)

    assert "name" not in claims
    assert claims["email"] == JENNY
    assert "name" not in userinfo(blog, token)


def test_unknown_claims_and_members_are_ignored(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    asked = {"id_token": {"shoe_size": {"essential": True}}, "access_token": {"x": None}}

    _, claims = tokens(browser, shop, console, asked)

    assert "shoe_size" not in claims
    assert claims["email"] == JENNY


@pytest.mark.parametrize(
    "claims",
    [
        "{not json",
        "[]",
        '"id_token"',
        '{"id_token": ["email"]}',
        '{"userinfo": {"email": 1}}',
        '{"id_token": {"email": {"essential": "yes"}}}',
        '{"id_token": {"sub": {"values": "usr_x"}}}',
    ],
)
def test_a_malformed_claims_parameter_is_invalid_request(
    app: Flask, shop: RelyingParty, claims: str
) -> None:
    request = shop.authorization_request(claims=claims)

    answer = Browser(app, ISSUER).get(request.url)

    assert answer.status_code == 302
    location = query_of(answer.headers["Location"])
    assert location["error"] == "invalid_request"
    assert location["state"] == request.state


def test_every_id_token_carries_our_acr_and_refreshed_ones_keep_the_claims_request(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    shop = shop_with(app, "openid offline_access")

    token, claims = tokens(browser, shop, console, {"id_token": {"email": None}})
    refreshed = shop.http.post(
        ISSUER + "/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=("shop", SHOP_SECRET),
    ).json()
    again = unverified_claims(refreshed["id_token"])

    assert claims["acr"] == ACR_SMS_OTP
    assert again["acr"] == ACR_SMS_OTP
    assert again["email"] == JENNY
    assert again["auth_time"] == claims["auth_time"]


def test_acr_values_we_cannot_meet_are_answered_with_our_acr(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, callback = sign_in(browser, shop, console, acr_values="urn:example:loa:4 phr")

    claims = shop.validate_id_token(shop.exchange(callback, request), request.nonce)

    assert claims["acr"] == ACR_SMS_OTP


def test_an_essential_acr_we_offer_is_met(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    asked = {"id_token": {"acr": {"essential": True, "values": ["urn:x", ACR_SMS_OTP]}}}

    _, claims = tokens(browser, shop, console, asked)

    assert claims["acr"] == ACR_SMS_OTP


@pytest.mark.parametrize(
    "acr",
    [
        {"essential": True, "value": "urn:example:loa:4"},
        {"essential": True, "values": ["urn:example:loa:3", "urn:example:loa:4"]},
    ],
)
def test_an_essential_acr_we_do_not_offer_fails_before_any_sign_in(
    app: Flask, shop: RelyingParty, console: list[str], acr: dict[str, Any]
) -> None:
    request = shop.authorization_request(claims=json.dumps({"id_token": {"acr": acr}}))

    answer = Browser(app, ISSUER).get(request.url)

    assert answer.status_code == 302
    location = query_of(answer.headers["Location"])
    assert location["error"] == "access_denied"
    assert location["state"] == request.state
    assert console == []  # no SMS was sent for a sign-in that could not count


def test_a_voluntary_acr_we_do_not_offer_is_answered_with_ours(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    asked = {"id_token": {"acr": {"values": ["urn:example:loa:4"]}}}

    _, claims = tokens(browser, shop, console, asked)

    assert claims["acr"] == ACR_SMS_OTP


def test_a_sub_asked_for_by_value_must_be_the_user_who_signs_in(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    asked = json.dumps({"id_token": {"sub": {"value": "usr_somebodyelse"}}})
    request = shop.authorization_request(claims=asked)
    browser.start(request.url)
    browser.submit("/email", email=JENNY)

    answer = browser.submit("/code", code=announced_code(console))

    assert answer.status_code == 302
    location = query_of(answer.headers["Location"])
    assert location["error"] == "access_denied"
    assert location["state"] == request.state
    assert "code" not in location


def test_a_session_answers_for_its_own_sub_only(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    _, claims = tokens(browser, shop, console, {})
    mine = {"id_token": {"sub": {"value": claims["sub"]}}}
    other = {"id_token": {"sub": {"value": "usr_somebodyelse"}}}

    same_user = shop.authorization_request(prompt="none", claims=json.dumps(mine))
    answered = browser.get(same_user.url)
    different = browser.get(shop.authorization_request(prompt="none", claims=json.dumps(other)).url)

    token = shop.exchange(answered.headers["Location"], same_user)
    assert shop.validate_id_token(token, same_user.nonce)["sub"] == claims["sub"]
    assert query_of(different.headers["Location"])["error"] == "login_required"


def test_discovery_announces_the_claims_parameter_and_acr(shop: RelyingParty) -> None:
    metadata = shop.metadata

    assert metadata["claims_parameter_supported"] is True
    assert "acr" in metadata["claims_supported"]
    assert metadata["acr_values_supported"] == [ACR_SMS_OTP]


def test_an_absurdly_nested_claims_parameter_is_invalid_request_not_a_crash(
    app: Flask, shop: RelyingParty
) -> None:
    request = shop.authorization_request(claims="[" * 100_000)

    answer = Browser(app, ISSUER).get(request.url)

    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "invalid_request"
