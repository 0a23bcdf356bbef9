"""Account Links and Login Links: the API, single use, expiry, onboarding and the account page."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from tests.api_client import ACME_APP_KEY, ACME_WEB_KEY, BLOG_KEY, SHOP_KEY, Platform, api_settings
from tests.conftest import ISSUER, JENNY, ON_REDIS_CLUSTER, SHOP_CALLBACK, SHOP_SECRET
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too: every test (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

REFRESH = "https://shop.example.test/onboarding/refresh"
RETURN = "https://shop.example.test/onboarding/done"


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def shop_api(app: Flask) -> Platform:
    return Platform(app, SHOP_KEY)


def error_of(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Request-Id"].startswith("req_")
    return response.get_json()["error"]


def account_link(platform: Platform, account_id: str, **overrides: str) -> TestResponse:
    params = {
        "account": account_id,
        "type": "account_onboarding",
        "refresh_url": REFRESH,
        "return_url": RETURN,
        **overrides,
    }
    return platform.post("/v1/account_links", {k: v for k, v in params.items() if v})


def onboarding_url(platform: Platform, account: str) -> str:
    response = account_link(platform, account)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["url"]


def login_url(platform: Platform, account: str) -> str:
    response = platform.post(f"/v1/accounts/{account}/login_links")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["url"]


def visit(browser: Browser, url: str) -> TestResponse:
    return browser.get(url)


def onboard(browser: Browser, url: str, console: list[str], email: str = JENNY) -> TestResponse:
    """Visit an onboarding Account Link and verify ``email`` with the SMS code; the final answer."""
    answer = visit(browser, url)
    assert answer.status_code == 303
    browser.get(answer.headers["Location"])
    browser.submit("/email", email=email)
    return browser.submit("/code", code=announced_code(console))


# --- The API ---


def test_an_account_link_is_created_with_stripes_shape(
    shop_api: Platform, live_clock: FixedClock
) -> None:
    account = shop_api.create_account()

    response = account_link(shop_api, account["id"])

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"object", "created", "expires_at", "url"}
    assert body["object"] == "account_link"
    assert body["created"] == live_clock.now()
    assert body["expires_at"] == live_clock.now() + 3600
    assert body["url"].startswith(ISSUER + "/links/link_")


def test_an_account_link_token_carries_at_least_128_random_bits(shop_api: Platform) -> None:
    account = shop_api.create_account()
    urls = {onboarding_url(shop_api, account["id"]) for _ in range(3)}

    tokens = {url.rsplit("/", 1)[1] for url in urls}
    assert len(tokens) == 3
    # URL-safe base64: 6 bits a character.
    assert all(len(token) * 6 >= 128 for token in tokens)


@pytest.mark.parametrize("missing", ["account", "type", "refresh_url", "return_url"])
def test_each_account_link_parameter_is_required(shop_api: Platform, missing: str) -> None:
    account = shop_api.create_account()

    error = error_of(account_link(shop_api, account["id"], **{missing: ""}), 400)

    assert error["type"] == "invalid_request_error"
    assert error["code"] == "parameter_missing"
    assert error["param"] == missing


def test_an_unknown_account_link_type_is_refused(shop_api: Platform) -> None:
    account = shop_api.create_account()

    error = error_of(account_link(shop_api, account["id"], type="account_takeover"), 400)

    assert error["param"] == "type"


@pytest.mark.parametrize(
    "url",
    ["http://shop.example.test/back", "javascript:alert(1)", "shop.example.test/back", "https://"],
)
def test_return_and_refresh_urls_must_be_https_or_loopback(shop_api: Platform, url: str) -> None:
    account = shop_api.create_account()

    for param in ("return_url", "refresh_url"):
        error = error_of(account_link(shop_api, account["id"], **{param: url}), 400)
        assert error["param"] == param
        assert error["code"] == "url_invalid"


def test_loopback_http_urls_are_accepted_for_development(shop_api: Platform) -> None:
    account = shop_api.create_account()

    response = account_link(
        shop_api,
        account["id"],
        refresh_url="http://127.0.0.1:8001/r",
        return_url="http://localhost/x",
    )

    assert response.status_code == 200


def test_an_unknown_parameter_is_refused(shop_api: Platform) -> None:
    account = shop_api.create_account()

    error = error_of(account_link(shop_api, account["id"], collect="eventually_due"), 400)

    assert error["code"] == "parameter_unknown"
    assert error["param"] == "collect"


def test_an_account_link_for_an_unknown_account_is_not_found(shop_api: Platform) -> None:
    error = error_of(account_link(shop_api, "acct_nobody"), 404)

    assert error["code"] == "resource_missing"
    assert error["param"] == "account"


def test_a_platform_cannot_mint_account_links_for_another_platforms_account(app: Flask) -> None:
    shop_api, blog_api = Platform(app, SHOP_KEY), Platform(app, BLOG_KEY)
    account = shop_api.create_account()

    assert error_of(account_link(blog_api, account["id"]), 404)["code"] == "resource_missing"
    login = blog_api.post(f"/v1/accounts/{account['id']}/login_links")
    assert error_of(login, 404)["code"] == "resource_missing"


def test_clients_sharing_a_sector_mint_account_links_for_each_others_accounts(app: Flask) -> None:
    web, mobile = Platform(app, ACME_WEB_KEY), Platform(app, ACME_APP_KEY)
    account = web.create_account()

    assert account_link(mobile, account["id"]).status_code == 200
    assert mobile.post(f"/v1/accounts/{account['id']}/login_links").status_code == 200


def test_the_account_link_endpoint_needs_an_api_key(app: Flask) -> None:
    response = app.test_client().post("/v1/account_links", data={"account": "acct_x"})

    assert error_of(response, 401)["type"] == "authentication_error"


def test_a_login_link_is_created_for_an_express_account(
    shop_api: Platform, live_clock: FixedClock
) -> None:
    account = shop_api.create_account()

    response = shop_api.post(f"/v1/accounts/{account['id']}/login_links")

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"object", "created", "url"}
    assert body["object"] == "login_link"
    assert body["created"] == live_clock.now()
    assert body["url"].startswith(ISSUER + "/links/")


def test_a_login_link_for_a_custom_account_is_refused(shop_api: Platform) -> None:
    account = shop_api.create_account(type="custom")

    error = error_of(shop_api.post(f"/v1/accounts/{account['id']}/login_links"), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == "account"


def test_a_login_link_takes_no_parameters(shop_api: Platform) -> None:
    account = shop_api.create_account()

    response = shop_api.post(f"/v1/accounts/{account['id']}/login_links", {"expires_in": "9"})

    assert error_of(response, 400)["code"] == "parameter_unknown"


def test_account_and_login_links_cannot_be_retrieved_listed_or_deleted(shop_api: Platform) -> None:
    account = shop_api.create_account()
    account_link(shop_api, account["id"])

    assert shop_api.get("/v1/account_links").status_code in (404, 405)
    assert shop_api.delete("/v1/account_links").status_code in (404, 405)
    assert shop_api.get(f"/v1/accounts/{account['id']}/login_links").status_code in (404, 405)


def test_an_account_link_request_replays_with_its_idempotency_key(shop_api: Platform) -> None:
    account = shop_api.create_account()
    params = {
        "account": account["id"],
        "type": "account_onboarding",
        "refresh_url": REFRESH,
        "return_url": RETURN,
    }

    first = shop_api.post("/v1/account_links", params, idempotency_key="onboard-1")
    second = shop_api.post("/v1/account_links", params, idempotency_key="onboard-1")
    other = shop_api.post(
        "/v1/account_links", {**params, "type": "account_update"}, idempotency_key="onboard-1"
    )

    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()
    assert error_of(other, 400)["type"] == "idempotency_error"


def test_a_replayed_login_link_is_not_kept_readable_in_redis(
    shop_api: Platform, redis_client: Any
) -> None:
    account = shop_api.create_account()
    response = shop_api.post(f"/v1/accounts/{account['id']}/login_links", idempotency_key="k1")
    token = response.get_json()["url"].rsplit("/", 1)[1]

    stored = [redis_client.dump(key) or b"" for key in redis_client.scan_iter("oidc-link:*")]

    assert stored
    assert not any(token.encode() in value for value in stored)


# --- Visiting an Account or Login Link ---


def test_a_visit_swaps_the_token_for_a_cookie_and_a_clean_url(
    app: Flask, shop_api: Platform
) -> None:
    account = shop_api.create_account()
    url = login_url(shop_api, account["id"])
    token = url.rsplit("/", 1)[1]
    browser = Browser(app, ISSUER)

    answer = visit(browser, url)

    assert answer.status_code == 303
    assert token not in answer.headers["Location"]
    assert answer.headers["Location"] == "/account"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/account" in cookie
    assert token not in cookie
    page = browser.get("/account")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_a_second_visit_of_an_account_link_goes_to_the_refresh_url(
    app: Flask, shop_api: Platform
) -> None:
    account = shop_api.create_account()
    url = onboarding_url(shop_api, account["id"])

    first = visit(Browser(app, ISSUER), url)
    second = visit(Browser(app, ISSUER), url)

    assert first.status_code == 303
    assert urlsplit(first.headers["Location"]).path.startswith("/signin/")
    assert second.status_code == 303
    assert second.headers["Location"] == REFRESH


def test_an_expired_account_link_goes_to_the_refresh_url(
    app: Flask, shop_api: Platform, live_clock: FixedClock
) -> None:
    account = shop_api.create_account()
    url = onboarding_url(shop_api, account["id"])

    live_clock.advance(3600)
    answer = visit(Browser(app, ISSUER), url)

    assert answer.status_code == 303
    assert answer.headers["Location"] == REFRESH


def test_an_account_link_used_just_before_its_expiry_still_works(
    app: Flask, shop_api: Platform, live_clock: FixedClock
) -> None:
    account = shop_api.create_account()
    url = onboarding_url(shop_api, account["id"])

    live_clock.advance(3599)
    answer = visit(Browser(app, ISSUER), url)

    assert urlsplit(answer.headers["Location"]).path.startswith("/signin/")


def test_a_garbled_token_goes_to_the_refresh_url_like_a_used_one(
    app: Flask, shop_api: Platform
) -> None:
    account = shop_api.create_account()
    url = onboarding_url(shop_api, account["id"])
    garbled = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")

    answer = visit(Browser(app, ISSUER), garbled)

    assert answer.headers["Location"] == REFRESH
    # The real Account Link was not spent by the garbled one.
    assert urlsplit(visit(Browser(app, ISSUER), url).headers["Location"]).path.startswith(
        "/signin/"
    )


def test_an_account_link_with_an_unknown_id_gets_a_friendly_page(app: Flask) -> None:
    answer = visit(Browser(app, ISSUER), "/links/link_unknown/" + "x" * 43)

    assert answer.status_code == 404
    assert "ask for a new one" in answer.get_data(as_text=True)
    assert answer.mimetype == "text/html"


def test_a_login_link_expires_after_five_minutes(
    app: Flask, shop_api: Platform, live_clock: FixedClock
) -> None:
    account = shop_api.create_account()
    url = login_url(shop_api, account["id"])

    live_clock.advance(300)
    answer = visit(Browser(app, ISSUER), url)

    assert answer.status_code == 404
    assert "Set-Cookie" not in answer.headers


def test_two_simultaneous_visits_let_exactly_one_in(app: Flask, shop_api: Platform) -> None:
    account = shop_api.create_account()
    url = login_url(shop_api, account["id"])
    barrier = threading.Barrier(8)
    answers: list[TestResponse] = []

    def go() -> None:
        browser = Browser(app, ISSUER)
        barrier.wait()
        answers.append(visit(browser, url))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(answers) == 8
    admitted = [a for a in answers if a.headers.get("Location") == "/account"]
    assert len(admitted) == 1
    assert sum(1 for a in answers if a.status_code == 404) == 7


# --- Onboarding ---


def test_onboarding_verifies_the_identity_and_returns_to_the_platform(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    account = shop_api.create_account(email=JENNY)
    browser = Browser(app, ISSUER)

    answer = onboard(browser, onboarding_url(shop_api, account["id"]), console)

    assert answer.status_code == 303
    assert answer.headers["Location"] == RETURN
    retrieved = shop_api.get(f"/v1/accounts/{account['id']}").get_json()
    assert retrieved["details_submitted"] is True
    assert retrieved["email"] == JENNY


def test_the_onboarding_pages_say_what_is_being_verified(app: Flask, shop_api: Platform) -> None:
    account = shop_api.create_account(email=JENNY)
    browser = Browser(app, ISSUER)

    browser.get(visit(browser, onboarding_url(shop_api, account["id"])).headers["Location"])

    heading = browser.soup().find("h1").get_text()
    assert heading == "Verify your details for Example Shop"
    assert browser.soup().find("input", {"name": "email"})["value"] == JENNY


def test_leaving_onboarding_goes_to_the_return_url_and_binds_nothing(
    app: Flask, shop_api: Platform
) -> None:
    account = shop_api.create_account()
    browser = Browser(app, ISSUER)
    browser.get(visit(browser, onboarding_url(shop_api, account["id"])).headers["Location"])

    answer = browser.submit("/cancel")

    assert answer.headers["Location"] == RETURN
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json()["details_submitted"] is False


def test_after_onboarding_an_oidc_sign_in_gives_the_account_id_as_sub(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    account = shop_api.create_account()
    onboard(Browser(app, ISSUER), onboarding_url(shop_api, account["id"]), console)
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)

    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    claims = shop.validate_id_token(shop.exchange(callback, request), request.nonce)

    assert claims["sub"] == account["id"]
    # No second account appeared for the sign-in.
    listed = shop_api.get("/v1/accounts").get_json()["data"]
    assert [a["id"] for a in listed] == [account["id"]]


def test_an_email_that_already_has_an_account_here_cannot_onboard_into_another(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    first_sub = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
    account = shop_api.create_account()
    browser = Browser(app, ISSUER)

    answer = onboard(browser, onboarding_url(shop_api, account["id"]), console)

    # The email step again, saying why (a problem is answered 400 like the others).
    assert answer.status_code == 400
    assert browser.soup().find("input", {"name": "email"}) is not None
    assert "already connected to another account" in answer.get_data(as_text=True)
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json()["details_submitted"] is False
    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    assert shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"] == (
        first_sub
    )


def test_the_same_email_onboards_separately_at_another_platform(
    app: Flask, console: list[str]
) -> None:
    shop_api, blog_api = Platform(app, SHOP_KEY), Platform(app, BLOG_KEY)
    at_shop, at_blog = shop_api.create_account(), blog_api.create_account()

    onboard(Browser(app, ISSUER), onboarding_url(shop_api, at_shop["id"]), console)
    answer = onboard(Browser(app, ISSUER), onboarding_url(blog_api, at_blog["id"]), console)

    assert answer.headers["Location"] == RETURN
    assert blog_api.get(f"/v1/accounts/{at_blog['id']}").get_json()["details_submitted"] is True


# --- The account page ---


def open_account_page(app: Flask, platform: Platform, account: str) -> Browser:
    browser = Browser(app, ISSUER)
    answer = visit(browser, login_url(platform, account))
    assert answer.headers["Location"] == "/account"
    browser.get("/account")
    return browser


def test_the_account_page_shows_the_verified_details_and_platform(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    account = shop_api.create_account()
    onboard(Browser(app, ISSUER), onboarding_url(shop_api, account["id"]), console)

    browser = open_account_page(app, shop_api, account["id"])

    text = browser.soup().get_text(" ")
    assert "Your account at Example Shop" in text
    assert JENNY in text
    assert "Jenny Rosen" in text
    assert account["id"] in text


def test_the_account_page_without_its_cookie_is_closed(app: Flask) -> None:
    page = Browser(app, ISSUER).get("/account")

    assert page.status_code == 401
    assert "open your account from there again" in page.get_data(as_text=True)


def test_the_account_page_closes_after_its_lifetime(
    app: Flask, shop_api: Platform, live_clock: FixedClock
) -> None:
    account = shop_api.create_account()
    browser = open_account_page(app, shop_api, account["id"])

    live_clock.advance(3600)

    assert browser.get("/account").status_code == 401


def test_the_account_page_lists_devices_and_signs_out_everywhere(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    phone, laptop = Browser(app, ISSUER), Browser(app, ISSUER)
    request, callback = sign_in(phone, shop, console, scope="openid email offline_access")
    tokens = shop.exchange(callback, request)
    sign_in(laptop, shop, console)
    sub = shop.validate_id_token(tokens, request.nonce)["sub"]

    page = open_account_page(app, shop_api, sub)
    devices = page.soup().find("ul", class_="devices").find_all("li")
    assert len(devices) == 2

    answer = page.submit("/sign-out-everywhere")

    assert "signed out of Example Shop on every device" in answer.get_data(as_text=True)
    assert page.soup().find("ul", class_="devices") is None
    # The SSO sessions are gone: a new authorization asks for the email again.
    laptop.start(shop.authorization_request().url)
    assert laptop.soup().find("input", {"name": "email"}) is not None
    # The offline_access refresh token is revoked too.
    refreshed = shop.http.post(
        ISSUER + "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("shop", SHOP_SECRET),
    )
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


def test_account_page_forms_need_their_csrf_token(app: Flask, shop_api: Platform) -> None:
    account = shop_api.create_account()
    browser = open_account_page(app, shop_api, account["id"])

    answer = browser.client.post(
        "/account/sign-out-everywhere", data={"csrf_token": "forged"}, base_url=ISSUER
    )

    assert answer.status_code == 400


def test_an_update_verifies_a_new_email_and_moves_the_sub_with_it(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    account = shop_api.create_account()
    onboard(Browser(app, ISSUER), onboarding_url(shop_api, account["id"]), console)
    browser = open_account_page(app, shop_api, account["id"])

    browser.submit("/account/update")
    browser.submit("/email", email="sam@example.com")
    done = browser.submit("/code", code=announced_code(console))

    # Back on the account page (the browser followed the 303), with the new email.
    assert done.status_code == 200
    assert "sam@example.com" in done.get_data(as_text=True)
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json()["email"] == "sam@example.com"
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    request, callback = sign_in(Browser(app, ISSUER), shop, console, login_hint="sam@example.com")
    assert (
        shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
        == (account["id"])
    )
    # The old email no longer leads into this account.
    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    assert (
        shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
        != (account["id"])
    )


def test_an_account_update_link_starts_at_the_current_email(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    account = shop_api.create_account()
    onboard(Browser(app, ISSUER), onboarding_url(shop_api, account["id"]), console)
    url = account_link(shop_api, account["id"], type="account_update").get_json()["url"]
    browser = Browser(app, ISSUER)

    browser.get(visit(browser, url).headers["Location"])
    browser.submit("/email")
    done = browser.submit("/code", code=announced_code(console))

    assert done.headers["Location"] == RETURN
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json()["email"] == JENNY


def test_closing_the_account_page_ends_its_session(app: Flask, shop_api: Platform) -> None:
    account = shop_api.create_account()
    browser = open_account_page(app, shop_api, account["id"])

    browser.submit("/account/sign-out")

    assert browser.get("/account").status_code == 401


def test_an_authorization_request_cannot_smuggle_itself_into_an_onboarding(
    app: Flask, shop_api: Platform, console: list[str]
) -> None:
    victim = shop_api.create_account()
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    smuggled = {
        "purpose": "account_onboarding",
        "account_link": "account_onboarding",
        "account": victim["id"],
        "account_id": victim["id"],
        "owner": "shop",
        "return_url": "https://attacker.example/",
    }

    request, callback = sign_in(Browser(app, ISSUER), shop, console, **smuggled)

    assert callback.startswith(SHOP_CALLBACK + "?")
    claims = shop.validate_id_token(shop.exchange(callback, request), request.nonce)
    assert claims["sub"] != victim["id"]
    assert shop_api.get(f"/v1/accounts/{victim['id']}").get_json()["details_submitted"] is False
