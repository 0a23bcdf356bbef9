"""The account page acts only within the platform's sector, and on a person's sessions only
once the account's email is verified (issue 14: any platform could sign anyone out of every
relying party with an express account made with their email).

Runs on fakeredis and a real redis-server; relying parties' back-channel logout endpoints
are a real HTTP server on a loopback port, told through the outbox (tests/outbox_delivery.py
stands in for its worker).
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.ids import digest
from oidc_link.services import Services, build_services
from tests.api_client import SHOP_KEY, Platform
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    POST_SECRET,
    SHOP_CALLBACK,
    SHOP_SECRET,
    provider_config,
)
from tests.outbox_delivery import deliver_outbox
from tests.relying_party import Browser, RelyingParty, query_of
from tests.test_backchannel_logout import (  # noqa: F401 - fixtures
    LogoutReceiver,
    receiver,
)
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


@pytest.fixture
def services(
    receiver: LogoutReceiver,  # noqa: F811 - the fixture imported above
    redis_client: redis.Redis,
    live_clock: FixedClock,
    console: list[str],
) -> Services:
    """shop (a platform with an API key) and blog (another owner's client): each its own
    sector, both told of logouts at the same receiver (the logout token's aud says which)."""
    config = provider_config()
    clients: list[dict[str, Any]] = config["clients"]  # type: ignore[assignment]
    clients[0]["api_keys"] = [digest(SHOP_KEY)]
    for client in clients[:2]:
        client["backchannel_logout_uri"] = receiver.url
    settings: Settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    return build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app(services.settings, services)


def blog(app: Flask) -> RelyingParty:
    return RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        "client_secret_post",
        scope="openid email",
    )


def signed_in(browser: Browser, rp: RelyingParty, console: list[str]) -> dict[str, Any]:
    request, callback = sign_in(browser, rp, console)
    return rp.exchange(callback, request)


def sso(browser: Browser, rp: RelyingParty) -> dict[str, Any]:
    """A sign-in through the browser's SSO session: no page, no SMS."""
    request = rp.authorization_request()
    answer = browser.get(request.url)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return rp.exchange(answer.headers["Location"], request)


def silent(browser: Browser, rp: RelyingParty) -> dict[str, str]:
    """``prompt=none``: what the browser's session answers for ``rp`` without a page."""
    answer = browser.get(rp.authorization_request(prompt="none").url)
    assert answer.status_code == 302
    return query_of(answer.headers["Location"])


def userinfo_status(rp: RelyingParty, token: dict[str, Any]) -> int:
    answer = rp.http.get(
        ISSUER + "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]}
    )
    return answer.status_code


def open_account_page(app: Flask, platform: Platform, account_id: str) -> Browser:
    answer = platform.post(f"/v1/accounts/{account_id}/login_links")
    assert answer.status_code == 200, answer.get_json()
    browser = Browser(app, ISSUER)
    assert browser.get(answer.get_json()["url"]).headers["Location"] == "/account"
    browser.get("/account")
    return browser


def notified_clients(app: Flask, logouts: LogoutReceiver) -> list[str]:
    """The ``aud`` of each logout token the receiver got, checked like a relying party."""
    jwks = app.test_client().get("/jwks.json", base_url=ISSUER).get_json()
    audiences = []
    for received in logouts.received:
        token = received.form["logout_token"][0]
        key = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(token)["kid"])
        claims = jwt.decode(
            token,
            jwt.PyJWK(key).key,
            algorithms=[key["alg"]],
            issuer=ISSUER,
            options={"verify_aud": False},
        )
        audiences.append(claims["aud"])
    return sorted(audiences)


def test_a_platform_cannot_sign_out_someone_it_gave_as_an_unverified_email(
    app: Flask,
    console: list[str],
    receiver: LogoutReceiver,  # noqa: F811 - the fixture imported above
    services: Services,
    redis_client: redis.Redis,
) -> None:
    # Jenny is signed in at blog, another owner's client.
    victim = Browser(app, ISSUER)
    blog_token = signed_in(victim, blog(app), console)
    # 1. With its own API key, shop makes an express account with Jenny's email.
    shop_api = Platform(app, SHOP_KEY)
    account = shop_api.create_account(email=JENNY)
    assert account["details_submitted"] is False
    # 2. It creates a Login Link and opens it.
    page = open_account_page(app, shop_api, account["id"])

    # The page neither offers the sign-out nor shows Jenny's devices, and says why.
    soup = page.soup()
    assert soup.find("form", action="/account/sign-out-everywhere") is None
    assert soup.find("ul", class_="devices") is None
    assert "Confirm your email with Link" in soup.find(id="sign-out-unavailable").get_text()
    # 3. It presses "Sign out everywhere" anyway, with the page's own CSRF token.
    csrf_token = soup.find("input", attrs={"name": "csrf_token"})["value"]
    answer = page.client.post(
        "/account/sign-out-everywhere", data={"csrf_token": csrf_token}, base_url=ISSUER
    )

    assert answer.status_code == 403
    assert "Nothing was changed" in answer.get_data(as_text=True)
    # Jenny's SSO session at blog survives, her access token still works, and blog is told
    # nothing.
    assert "code" in silent(victim, blog(app))
    assert userinfo_status(blog(app), blog_token) == 200
    assert deliver_outbox(redis_client, services) == []
    assert receiver.received == []


def test_a_verified_account_ends_only_its_own_sectors_sessions_and_tokens(
    app: Flask,
    console: list[str],
    receiver: LogoutReceiver,  # noqa: F811 - the fixture imported above
    services: Services,
    redis_client: redis.Redis,
) -> None:
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    # Three browsers of Jenny's: one used only for blog, one only for shop, one for both.
    at_blog, at_shop, at_both = Browser(app, ISSUER), Browser(app, ISSUER), Browser(app, ISSUER)
    blog_only_token = signed_in(at_blog, blog(app), console)
    shop_only_token = signed_in(at_shop, shop, console)
    request, callback = sign_in(at_both, shop, console, scope="openid email offline_access")
    shared_shop_token = shop.exchange(callback, request)
    shared_blog_token = sso(at_both, blog(app))
    sub = shop.validate_id_token(shared_shop_token, request.nonce)["sub"]
    shop_api = Platform(app, SHOP_KEY)
    assert shop_api.get(f"/v1/accounts/{sub}").get_json()["details_submitted"] is True

    page = open_account_page(app, shop_api, sub)

    devices = page.soup().find("ul", class_="devices").find_all("li")
    assert len(devices) == 2  # not the browser used only for blog
    assert sum("also used for other apps" in d.get_text() for d in devices) == 1
    effect = " ".join(page.soup().find(id="sign-out-effect").get_text().split())
    assert effect.startswith(
        "Ends 1 sign-in used only for Example Shop, and signs Example Shop out of 1 sign-in "
        "you also use for other apps (those stay signed in there)."
    )
    assert "Other apps you use with Link are not affected." in effect

    answer = page.submit("/sign-out-everywhere")

    assert "signed out of Example Shop on every device" in answer.get_data(as_text=True)
    # Shop's sign-ins are over, on both browsers that had one, and its tokens with them,
    # offline access included.
    assert silent(at_shop, shop)["error"] == "login_required"
    assert silent(at_both, shop)["error"] == "login_required"
    assert userinfo_status(shop, shop_only_token) == 401
    assert userinfo_status(shop, shared_shop_token) == 401
    refreshed = shop.http.post(
        ISSUER + "/token",
        data={"grant_type": "refresh_token", "refresh_token": shared_shop_token["refresh_token"]},
        auth=("shop", SHOP_SECRET),
    )
    assert refreshed.json()["error"] == "invalid_grant"
    # Blog, another owner's, keeps everything: both sessions still sign Jenny in there,
    # and both of its access tokens work.
    assert "code" in silent(at_blog, blog(app))
    assert "code" in silent(at_both, blog(app))
    assert userinfo_status(blog(app), blog_only_token) == 200
    assert userinfo_status(blog(app), shared_blog_token) == 200
    # Only shop was told, once per session it signed in to.
    deliver_outbox(redis_client, services)
    assert notified_clients(app, receiver) == ["shop", "shop"]
    # The page now lists nothing, and shop's sign-in asks for the SMS code again.
    assert page.get("/account").status_code == 200
    assert page.soup().find("ul", class_="devices") is None
    at_both.start(shop.authorization_request().url)
    assert at_both.soup().find("input", {"name": "email"}) is not None


def test_a_consent_of_another_sectors_client_cannot_be_removed_from_the_page(
    app: Flask, console: list[str]
) -> None:
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    sub = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
    page = open_account_page(app, Platform(app, SHOP_KEY), sub)
    csrf_token = page.soup().find("input", attrs={"name": "csrf_token"})["value"]

    answer = page.client.post(
        "/account/consents/blog/revoke", data={"csrf_token": csrf_token}, base_url=ISSUER
    )

    assert answer.status_code == 404
    assert "Nothing was changed" in answer.get_data(as_text=True)


def test_an_account_page_form_posted_from_another_site_is_refused(
    app: Flask, console: list[str]
) -> None:
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    browser = Browser(app, ISSUER)
    request, callback = sign_in(browser, shop, console)
    sub = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
    page = open_account_page(app, Platform(app, SHOP_KEY), sub)
    csrf_token = page.soup().find("input", attrs={"name": "csrf_token"})["value"]

    answer = page.client.post(
        "/account/sign-out-everywhere",
        data={"csrf_token": csrf_token},
        headers={"Origin": "https://evil.example"},
        base_url=ISSUER,
    )

    assert answer.status_code == 403
    assert "another website" in answer.get_data(as_text=True)
    assert "code" in silent(browser, shop)
