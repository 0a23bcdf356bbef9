"""Pushed authorization requests (RFC 9126): the client pushes, the browser brings a URN.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from bs4 import BeautifulSoup
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from oidc_link.store import keyspace
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    SHOP_CALLBACK,
    SHOP_SECRET,
    SPA_CALLBACK,
    provider_config,
)
from tests.relying_party import AuthorizationRequest, Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

URN_PREFIX = "urn:ietf:params:oauth:request_uri:"


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def push(app: Flask, params: dict[str, str], headers: dict[str, str] | None = None) -> TestResponse:
    """POST /par as the shop (client_secret_basic) unless other headers are given."""
    return app.test_client().post(
        "/par",
        data=params,
        headers=basic("shop", SHOP_SECRET) if headers is None else headers,
        base_url=ISSUER,
    )


def pushed_request(rp: RelyingParty, **extra: str) -> tuple[AuthorizationRequest, dict[str, str]]:
    """What the RP library would send to /authorize (state, nonce, PKCE), as PAR parameters."""
    request = rp.authorization_request(**extra)
    return request, query_of(request.url)


def authorize_url(client_id: str, request_uri: str, **extra: str) -> str:
    query = urlencode({"client_id": client_id, "request_uri": request_uri, **extra})
    return f"{ISSUER}/authorize?{query}"


def sign_in(browser: Browser, url: str, console: list[str], email: str = JENNY) -> str:
    """The user's journey from the /authorize URL; returns the RP callback URL."""
    browser.start(url)
    browser.submit("/email", email=email)
    answer = browser.submit("/code", code=announced_code(console))
    assert answer.status_code == 302
    return answer.headers["Location"]


def assert_error_page(answer: TestResponse) -> None:
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.mimetype == "text/html"


def test_a_pushed_request_signs_the_user_in_through_the_whole_code_flow(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, params = pushed_request(shop)

    pushed = push(browser.client.application, params)

    assert pushed.status_code == 201
    assert pushed.headers["Cache-Control"] == "no-store"
    assert pushed.mimetype == "application/json"
    body = pushed.get_json()
    assert body["expires_in"] == 90
    assert body["request_uri"].startswith(URN_PREFIX)
    # At least 128 bits of randomness after the prefix (RFC 9126 §2.2, §7.1).
    assert len(body["request_uri"].removeprefix(URN_PREFIX)) >= 22

    callback = sign_in(browser, authorize_url("shop", body["request_uri"]), console)

    assert callback.startswith(SHOP_CALLBACK + "?")
    assert query_of(callback)["state"] == request.state
    assert query_of(callback)["iss"] == ISSUER
    token = shop.exchange(callback, request)
    claims = shop.validate_id_token(token, request.nonce)
    assert claims["email"] == JENNY
    assert claims["aud"] == "shop"


def test_a_public_client_pushes_with_its_client_id_and_pkce(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none")
    request, params = pushed_request(spa)

    pushed = push(app, params, headers={})

    assert pushed.status_code == 201
    callback = sign_in(browser, authorize_url("spa", pushed.get_json()["request_uri"]), console)
    token = spa.exchange(callback, request)
    assert spa.validate_id_token(token, request.nonce)["aud"] == "spa"


def test_only_the_pushed_parameters_count_and_the_query_ones_are_ignored(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, params = pushed_request(shop, login_hint="sam@example.com", scope="openid email")
    request_uri = push(app, params).get_json()["request_uri"]
    # Were these used, prompt=none would answer login_required at once.
    url = authorize_url(
        "shop", request_uri, prompt="none", state="not-the-pushed-one", login_hint=JENNY
    )

    browser.start(url)

    assert browser.soup().find("input", attrs={"name": "email"})["value"] == "sam@example.com"
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    callback = answer.headers["Location"]
    assert query_of(callback)["state"] == request.state
    token = shop.exchange(callback, request)
    assert token["scope"] == "openid email"
    assert "name" not in shop.validate_id_token(token, request.nonce)


def test_a_request_uri_can_be_used_only_once(app: Flask, shop: RelyingParty) -> None:
    _, params = pushed_request(shop)
    url = authorize_url("shop", push(app, params).get_json()["request_uri"])

    first = Browser(app, ISSUER).get(url)
    again = Browser(app, ISSUER).get(url)

    assert first.status_code == 200
    assert 'name="email"' in first.get_data(as_text=True)
    assert_error_page(again)
    assert "already used" in again.get_data(as_text=True)


def test_reloading_a_pushed_requests_page_shows_the_same_sign_in_which_then_completes(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    # RFC 9126 §4 lets a reload of the user agent reuse the request_uri: the browser shows
    # /authorize?request_uri=... (the email page is its answer), and Reload must not meet
    # the used URN's error page.
    request, params = pushed_request(shop)
    url = authorize_url("shop", push(app, params).get_json()["request_uri"])
    browser.start(url)
    flow = browser.flow_path()

    again = browser.get(url)

    assert again.status_code == 200
    assert browser.flow_path() == flow
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    assert query_of(answer.headers["Location"])["state"] == request.state
    assert shop.validate_id_token(shop.exchange(answer.headers["Location"], request), request.nonce)


def test_a_request_uri_expires_after_its_lifetime(
    app: Flask, shop: RelyingParty, live_clock: FixedClock
) -> None:
    _, params = pushed_request(shop)
    url = authorize_url("shop", push(app, params).get_json()["request_uri"])

    live_clock.advance(90)

    assert_error_page(Browser(app, ISSUER).get(url))


def test_a_request_uri_is_still_good_just_before_it_expires(
    app: Flask, shop: RelyingParty, live_clock: FixedClock
) -> None:
    _, params = pushed_request(shop)
    url = authorize_url("shop", push(app, params).get_json()["request_uri"])

    live_clock.advance(89)

    assert Browser(app, ISSUER).get(url).status_code == 200


@pytest.mark.parametrize("client_id", ["spa", "unknown", None])
def test_a_request_uri_is_refused_for_another_or_no_client_without_a_redirect(
    app: Flask, shop: RelyingParty, client_id: str | None
) -> None:
    _, params = pushed_request(shop)
    request_uri = push(app, params).get_json()["request_uri"]
    query = {"request_uri": request_uri, "redirect_uri": SPA_CALLBACK}
    if client_id is not None:
        query["client_id"] = client_id

    assert_error_page(Browser(app, ISSUER).get(f"{ISSUER}/authorize?{urlencode(query)}"))


def test_an_unknown_request_uri_gets_an_error_page(app: Flask) -> None:
    url = authorize_url("shop", URN_PREFIX + "made-up", redirect_uri=SHOP_CALLBACK)

    assert_error_page(Browser(app, ISSUER).get(url))


def test_a_request_uri_that_is_not_ours_is_still_not_supported(
    app: Flask, shop: RelyingParty
) -> None:
    request = shop.authorization_request(request_uri="https://shop.example.test/request.jwt")

    answer = Browser(app, ISSUER).get(request.url)

    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "request_uri_not_supported"


@pytest.mark.parametrize(
    "headers",
    [
        basic("shop", "not-the-secret-0123456789"),
        basic("nobody", SHOP_SECRET),
        {},  # a confidential client that only names itself
    ],
)
def test_par_with_bad_client_authentication_is_401_invalid_client(
    app: Flask, shop: RelyingParty, headers: dict[str, str]
) -> None:
    _, params = pushed_request(shop)

    answer = push(app, params, headers)

    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
    assert "Location" not in answer.headers


def test_par_with_the_secret_in_the_body_is_refused_for_a_basic_client(
    app: Flask, shop: RelyingParty
) -> None:
    """RFC 9126 §2: the client authenticates as at the token endpoint, with its own method."""
    _, params = pushed_request(shop)

    answer = push(app, {**params, "client_secret": SHOP_SECRET}, headers={})

    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": "https://evil.example.test/callback"}, "invalid_request"),
        ({"redirect_uri": None}, "invalid_request"),
        ({"request_uri": URN_PREFIX + "nested"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"scope": "email"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "a" * 42}, "invalid_request"),
        ({"response_type": None}, "invalid_request"),
        ({"prompt": "sometimes"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"claims": "{not json"}, "invalid_request"),
        ({"client_id": "spa"}, "invalid_request"),
    ],
)
def test_a_bad_pushed_request_is_a_400_json_error_and_never_a_redirect(
    app: Flask, shop: RelyingParty, change: dict[str, str | None], error: str
) -> None:
    _, params = pushed_request(shop)
    params = {k: v for k, v in {**params, **change}.items() if v is not None}

    answer = push(app, params)

    assert answer.status_code == 400
    assert answer.mimetype == "application/json"
    assert answer.get_json()["error"] == error
    assert "Location" not in answer.headers
    assert "state" not in answer.get_json()


def test_a_repeated_parameter_is_refused(app: Flask, shop: RelyingParty) -> None:
    _, params = pushed_request(shop)
    body = urlencode([*params.items(), ("scope", "openid")])

    answer = app.test_client().post(
        "/par",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers=basic("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"


def test_par_with_basic_and_a_secret_in_the_body_is_an_invalid_request(
    app: Flask, shop: RelyingParty
) -> None:
    """RFC 6749 §2.3: one client authentication method per request (§5.2 invalid_request)."""
    _, params = pushed_request(shop)

    answer = push(app, {**params, "client_secret": SHOP_SECRET})

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"
    assert "one client authentication method" in answer.get_json()["error_description"]


def test_the_authenticated_client_may_leave_client_id_out_of_the_body(
    app: Flask, shop: RelyingParty
) -> None:
    _, params = pushed_request(shop)
    del params["client_id"]

    assert push(app, params).status_code == 201


def test_par_takes_only_form_encoded_posts(app: Flask, shop: RelyingParty) -> None:
    _, params = pushed_request(shop)
    client = app.test_client()

    as_json = client.post("/par", json=params, headers=basic("shop", SHOP_SECRET), base_url=ISSUER)
    by_get = client.get("/par", query_string=params, base_url=ISSUER)

    assert as_json.status_code == 400
    assert as_json.get_json()["error"] == "invalid_request"
    assert by_get.status_code == 405
    assert by_get.get_json()["error"] == "invalid_request"


def test_prompt_none_may_be_pushed_and_is_answered_at_the_authorization_endpoint(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    _, params = pushed_request(shop, prompt="none", response_mode="form_post")
    request_uri = push(app, params).get_json()["request_uri"]

    answer = browser.get(authorize_url("shop", request_uri))

    # No session: login_required, delivered the way the *pushed* response_mode asks.
    assert answer.status_code == 200
    form = BeautifulSoup(answer.get_data(as_text=True), "html.parser").find("form")
    assert form["action"] == SHOP_CALLBACK
    fields = {i["name"]: i.get("value") for i in form.find_all("input") if i.get("name")}
    assert fields["error"] == "login_required"
    assert fields["state"] == params["state"]

    sign_in(browser, shop.authorization_request().url, console)
    request, params = pushed_request(shop, prompt="none")
    sso = browser.get(authorize_url("shop", push(app, params).get_json()["request_uri"]))

    assert sso.status_code == 302
    assert query_of(sso.headers["Location"])["state"] == request.state
    assert shop.exchange(sso.headers["Location"], request)["access_token"]


@pytest.fixture
def par_only_app(redis_client: redis.Redis, live_clock: FixedClock, console: list[str]) -> Flask:
    """The shop client with ``require_pushed_authorization_requests = true``."""
    config = provider_config()
    config["clients"][0]["require_pushed_authorization_requests"] = True  # type: ignore[index]
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


@pytest.mark.parametrize("marker", [None, "oidc_link:pushed"])
def test_a_client_that_requires_par_is_refused_without_it(
    par_only_app: Flask, marker: str | None
) -> None:
    """Also when the query carries the marker PAR requests get inside the provider."""
    shop = RelyingParty(par_only_app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    extra = {marker: "1"} if marker else {}
    request = shop.authorization_request(**extra)

    answer = Browser(par_only_app, ISSUER).get(request.url)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(SHOP_CALLBACK + "?")
    assert query_of(answer.headers["Location"])["error"] == "invalid_request"
    assert query_of(answer.headers["Location"])["state"] == request.state


def test_a_client_that_requires_par_signs_in_through_par(
    par_only_app: Flask, console: list[str]
) -> None:
    shop = RelyingParty(par_only_app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    request, params = pushed_request(shop)
    request_uri = push(par_only_app, params).get_json()["request_uri"]

    # The stored request is validated again after sign-in: PAR must still count then.
    callback = sign_in(Browser(par_only_app, ISSUER), authorize_url("shop", request_uri), console)

    token = shop.exchange(callback, request)
    assert shop.validate_id_token(token, request.nonce)["email"] == JENNY


def test_discovery_announces_the_par_endpoint(shop: RelyingParty) -> None:
    metadata: dict[str, Any] = shop.metadata

    assert metadata["pushed_authorization_request_endpoint"] == ISSUER + "/par"
    assert metadata["require_pushed_authorization_requests"] is False
    assert metadata["request_uri_parameter_supported"] is False
    assert metadata["request_parameter_supported"] is False


def test_a_pushed_request_is_stored_under_a_digest_with_its_lifetime_as_ttl(
    app: Flask, shop: RelyingParty, redis_client: redis.Redis
) -> None:
    _, params = pushed_request(shop)

    request_uri = push(app, params).get_json()["request_uri"]

    (key,) = redis_client.scan_iter(keyspace.pattern("pushed"))
    assert request_uri.removeprefix(URN_PREFIX) not in key
    assert request_uri.removeprefix(URN_PREFIX) not in redis_client.get(key)
    assert 0 < redis_client.ttl(key) <= 90


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": 'https://shop.example.test/"é'}, "invalid_request"),
        ({"response_type": 'co"dé'}, "unsupported_response_type"),
    ],
)
def test_characters_an_error_description_cannot_hold_still_get_a_json_error(
    app: Flask, shop: RelyingParty, change: dict[str, str], error: str
) -> None:
    """Authlib quotes these values in its descriptions, where RFC 6749 forbids the quote."""
    _, params = pushed_request(shop)

    answer = push(app, {**params, **change})

    assert answer.status_code == 400
    assert answer.get_json()["error"] == error


@pytest.mark.parametrize(
    "response_type",
    # RFC 6749 §4.1.2.1 allows %x20-21 / %x23-5B / %x5D-7E: each neighbour of a gap.
    ['co"dé', 'co"de', "co\\de", "code\x7f", "code\x1f", "codé", "code\U0001f600"],
)
def test_an_unprintable_response_type_at_authorize_gets_an_error_page(
    app: Flask, response_type: str
) -> None:
    query = urlencode(
        {"client_id": "shop", "redirect_uri": SHOP_CALLBACK, "response_type": response_type}
    )

    assert_error_page(Browser(app, ISSUER).get(f"{ISSUER}/authorize?{query}"))
