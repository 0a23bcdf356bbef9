"""A relying party signs a user in end to end: Authlib's client against the real app.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import base64
import hashlib
import json

from flask import Flask

from oidc_link.clock import FixedClock
from tests.conftest import ISSUER, JENNY, ON_REDIS_CLUSTER, POST_SECRET, SHOP_CALLBACK, SPA_CALLBACK
from tests.relying_party import Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

# On a real Redis Cluster too: every test (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


def sign_in(browser: Browser, rp: RelyingParty, console: list[str], **extra: str):
    """The whole user journey; returns the authorization request and the RP callback URL."""
    request = rp.authorization_request(**extra)
    browser.start(request.url)
    browser.submit("/email", email=extra.get("login_hint", JENNY))
    code = announced_code(console)
    answer = browser.submit("/code", code=code)
    assert answer.status_code == 302
    return request, answer.headers["Location"]


def test_a_confidential_client_signs_a_user_in_and_validates_the_id_token(
    browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    request, callback = sign_in(browser, shop, console)

    assert callback.startswith(SHOP_CALLBACK + "?")
    assert query_of(callback)["state"] == request.state
    assert query_of(callback)["iss"] == ISSUER
    token = shop.exchange(callback, request)
    claims = shop.validate_id_token(token, request.nonce)

    assert claims["iss"] == ISSUER
    assert claims["aud"] == "shop"
    assert claims["nonce"] == request.nonce
    assert claims["email"] == JENNY
    assert claims["email_verified"] is True
    assert claims["name"] == "Jenny Rosen"
    assert claims["amr"] == ["otp", "sms"]
    assert claims["auth_time"] == live_clock.now()
    assert claims["exp"] > claims["iat"]
    # OIDC Core §3.1.3.6: the left half of the access token's SHA-256 (RS256), base64url.
    half = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(half).rstrip(b"=").decode()
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "openid email profile"


def test_a_public_client_signs_in_with_pkce_and_no_secret(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none")
    request, callback = sign_in(browser, spa, console)

    token = spa.exchange(callback, request)

    assert spa.validate_id_token(token, request.nonce)["aud"] == "spa"


def test_a_client_secret_post_client_gets_only_the_scopes_it_is_allowed(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    blog = RelyingParty(
        app, ISSUER, "blog", "https://blog.example.test/auth", POST_SECRET, "client_secret_post"
    )
    request, callback = sign_in(browser, blog, console)

    token = blog.exchange(callback, request)
    claims = blog.validate_id_token(token, request.nonce)

    assert token["scope"] == "openid email"
    assert claims["email"] == JENNY
    assert "name" not in claims


def test_the_id_token_kid_is_published_in_the_jwks_and_is_the_key_thumbprint(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, callback = sign_in(browser, shop, console)
    token = shop.exchange(callback, request)
    header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    (key,) = shop.http.get(ISSUER + "/jwks.json").json()["keys"]

    canonical = json.dumps({"e": key["e"], "kty": key["kty"], "n": key["n"]}, separators=(",", ":"))
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())

    assert header == {"alg": "RS256", "kid": key["kid"], "typ": "JWT"}
    assert key["kid"] == thumbprint.rstrip(b"=").decode()


def test_sub_is_stable_for_a_user_and_client_and_differs_between_clients(
    app: Flask, shop: RelyingParty, console: list[str]
) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none")
    subjects = []
    for rp in (shop, shop, spa):
        request, callback = sign_in(Browser(app, ISSUER), rp, console)
        subjects.append(rp.validate_id_token(rp.exchange(callback, request), request.nonce)["sub"])

    assert subjects[0] == subjects[1]
    assert subjects[0] != subjects[2]


def test_userinfo_returns_the_claims_of_the_granted_scopes(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, callback = sign_in(browser, shop, console)
    token = shop.exchange(callback, request)
    id_claims = shop.validate_id_token(token, request.nonce)

    by_get = shop.session.get(ISSUER + "/userinfo")
    by_post = shop.http.post(ISSUER + "/userinfo", data={"access_token": token["access_token"]})

    expected = {
        "sub": id_claims["sub"],
        "email": JENNY,
        "email_verified": True,
        "name": "Jenny Rosen",
    }
    assert by_get.json() == expected
    assert by_post.json() == expected


def test_login_hint_prefills_the_email_and_the_page_names_the_site(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.start(shop.authorization_request(login_hint="sam@example.com").url)

    email = browser.soup().find("input", attrs={"name": "email"})
    assert email["value"] == "sam@example.com"
    assert "Example Shop" in browser.soup().get_text()


def test_an_unknown_email_gets_the_not_on_link_page_and_can_try_another(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    browser.start(shop.authorization_request().url)
    browser.submit("/email", email="nobody@example.com")

    text = browser.soup().get_text()
    assert "nobody@example.com" in text
    assert browser.soup().find("a", string=lambda s: s and "Link" in s) is not None
    assert console == []

    browser.submit("/restart")
    assert browser.soup().find("input", attrs={"name": "email"}) is not None
    browser.submit("/email", email=JENNY)
    assert browser.soup().find("input", attrs={"name": "code"}) is not None


def test_back_to_the_site_returns_access_denied_with_state_and_iss(
    browser: Browser, shop: RelyingParty
) -> None:
    request = shop.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email="nobody@example.com")

    answer = browser.submit("/cancel")

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(SHOP_CALLBACK)
    assert query_of(answer.headers["Location"]) | {"error_description": ""} == {
        "error": "access_denied",
        "error_description": "",
        "state": request.state,
        "iss": ISSUER,
    }


def test_a_wrong_code_shows_an_error_and_the_user_can_try_again(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request = shop.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email=JENNY)

    wrong = browser.submit("/code", code="000001")
    assert wrong.status_code == 400
    assert "not right" in browser.soup().find(attrs={"role": "alert"}).get_text()

    answer = browser.submit("/code", code=announced_code(console))
    assert answer.status_code == 302
    assert "code" in query_of(answer.headers["Location"])


def test_every_hosted_page_shows_the_sandbox_banner(browser: Browser, shop: RelyingParty) -> None:
    browser.start(shop.authorization_request().url)
    pages = [browser.soup()]
    browser.submit("/email", email=JENNY)
    pages.append(browser.soup())
    browser.submit("/restart")
    browser.submit("/email", email="nobody@example.com")
    pages.append(browser.soup())

    for page in pages:
        assert "Sandbox" in page.get_text()
