"""Bad authorization requests: an error page when the RP cannot be trusted, else a redirect.

RFC 6749 §4.1.2.1: never redirect to an unverified client or redirect URI.
"""

from __future__ import annotations

import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from tests.conftest import ISSUER, SHOP_CALLBACK, SHOP_SECRET, SPA_CALLBACK, provider_config
from tests.relying_party import PKCE, Browser, query_of


def authorize(app: Flask, method: str = "GET", **params: str):
    client = app.test_client()
    if method == "POST":
        return client.post("/authorize", data=params, base_url=ISSUER)
    return client.get("/authorize", query_string=params, base_url=ISSUER)


VALID = {
    "response_type": "code",
    "client_id": "shop",
    "redirect_uri": SHOP_CALLBACK,
    "scope": "openid email",
    "state": "st-123",
    "nonce": "n-123",
    **PKCE,
}


@pytest.fixture
def legacy_app(redis_client: redis.Redis, live_clock: FixedClock, console: list[str]) -> Flask:
    """The shop client registered as a legacy confidential client: ``require_pkce = false``."""
    config = provider_config()
    config["clients"][0]["require_pkce"] = False  # type: ignore[index]
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


def test_a_valid_request_by_post_starts_a_sign_in_too(app: Flask) -> None:
    answer = authorize(app, "POST", **VALID)

    assert answer.status_code == 200
    assert 'action="/signin/flow_' in answer.get_data(as_text=True)
    binding = next(
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith("__Host-oidc_link_browser=")
    )
    assert "HttpOnly" in binding
    assert "SameSite=Lax" in binding


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_id": "unknown"}, "does not exist"),
        ({"client_id": None}, "client_id"),
        ({"redirect_uri": "https://evil.example.test/callback"}, "not supported"),
        ({"redirect_uri": SHOP_CALLBACK + "/extra"}, "not supported"),
        ({"redirect_uri": None}, "redirect_uri"),
    ],
)
def test_an_untrusted_client_or_redirect_uri_gets_an_error_page_and_no_redirect(
    app: Flask, change: dict[str, str | None], expected: str
) -> None:
    params = {k: v for k, v in {**VALID, **change}.items() if v is not None}

    answer = authorize(app, **params)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert expected in page
    assert answer.headers["Request-Id"] in page


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "email profile"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "a" * 43, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "a" * 42}, "invalid_request"),
        ({"code_challenge": "a" * 44}, "invalid_request"),
        ({"code_challenge": "a" * 128}, "invalid_request"),
        ({"code_challenge": "a" * 42 + "~"}, "invalid_request"),
        ({"code_challenge": "a" * 42 + "."}, "invalid_request"),
        ({"code_challenge": "a" * 42 + "="}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://shop.example.test/r/1"}, "request_uri_not_supported"),
        ({"registration": '{"logo_uri": "x"}'}, "registration_not_supported"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
    ],
)
def test_other_errors_redirect_to_the_client_with_state_and_iss(
    app: Flask, change: dict[str, str | None], error: str
) -> None:
    params = {k: v for k, v in {**VALID, **change}.items() if v is not None}

    answer = authorize(app, **params)

    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(SHOP_CALLBACK + "?")
    query = query_of(location)
    assert query["error"] == error
    assert query["state"] == "st-123"
    assert query["iss"] == ISSUER


def test_a_public_client_must_send_a_pkce_challenge(app: Flask) -> None:
    params = {**VALID, "client_id": "spa", "redirect_uri": SPA_CALLBACK}
    del params["code_challenge"], params["code_challenge_method"]

    answer = authorize(app, **params)

    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "invalid_request"


def test_a_confidential_client_must_send_a_pkce_challenge_by_default(app: Flask) -> None:
    params = {k: v for k, v in VALID.items() if not k.startswith("code_challenge")}

    answer = authorize(app, **params)

    assert answer.status_code == 302
    query = query_of(answer.headers["Location"])
    assert query["error"] == "invalid_request"
    assert "PKCE is required" in query["error_description"]
    assert query["state"] == "st-123"
    assert query["iss"] == ISSUER


def test_a_legacy_client_with_require_pkce_false_may_leave_pkce_out(legacy_app: Flask) -> None:
    params = {k: v for k, v in VALID.items() if not k.startswith("code_challenge")}

    answer = authorize(legacy_app, **params)

    assert answer.status_code == 200
    assert 'action="/signin/flow_' in answer.get_data(as_text=True)


def test_a_legacy_client_that_sends_pkce_gets_it_checked_all_the_same(legacy_app: Flask) -> None:
    answer = authorize(legacy_app, **{**VALID, "code_challenge": "a" * 42})

    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "invalid_request"


def test_a_repeated_parameter_is_refused_without_a_redirect(app: Flask) -> None:
    client = app.test_client()
    query = "&".join(f"{k}={v}" for k, v in VALID.items()) + "&client_id=blog"

    answer = client.get("/authorize?" + query, base_url=ISSUER)

    assert answer.status_code == 400
    assert "Location" not in answer.headers


@pytest.mark.parametrize("name", ["response_type", "client_id", "redirect_uri", "scope", "state"])
def test_a_repeated_parameter_the_redirect_depends_on_gets_an_error_page(
    app: Flask, name: str
) -> None:
    query = [*VALID.items(), (name, VALID[name])]

    answer = app.test_client().get("/authorize", query_string=query, base_url=ISSUER)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert answer.mimetype == "text/html"
    assert f"multiple &#39;{name}&#39; in request" in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    "name", ["nonce", "code_challenge", "code_challenge_method", "prompt", "max_age", "claims"]
)
def test_any_other_repeated_parameter_is_an_invalid_request_at_the_redirect_uri(
    app: Flask, name: str
) -> None:
    value = VALID.get(name) or {"prompt": "login", "max_age": "60", "claims": "{}"}[name]
    query = [*VALID.items(), (name, value), (name, value)]

    answer = app.test_client().get("/authorize", query_string=query, base_url=ISSUER)

    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(SHOP_CALLBACK + "?")
    assert query_of(location)["error"] == "invalid_request"
    assert query_of(location)["state"] == "st-123"
    assert query_of(location)["iss"] == ISSUER


def test_a_missing_response_type_with_an_unknown_redirect_uri_gets_an_error_page(
    app: Flask,
) -> None:
    params = {k: v for k, v in VALID.items() if k != "response_type"}
    params["redirect_uri"] = "https://evil.example.test/callback"

    answer = authorize(app, **params)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "response_type" in answer.get_data(as_text=True)


def test_a_flow_started_in_another_browser_cannot_be_continued(app: Flask) -> None:
    first = Browser(app, ISSUER)
    first.start("/authorize?" + "&".join(f"{k}={v}" for k, v in VALID.items()))
    flow_page = first.flow_path()

    stranger = Browser(app, ISSUER)
    answer = stranger.get(flow_page)

    assert answer.status_code == 403
    assert "another browser" in answer.get_data(as_text=True)
    back = stranger.soup().find("a", string="Back to Example Shop")
    assert back["href"] == "https://shop.example.test/"
