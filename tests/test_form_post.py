"""response_mode=form_post (OAuth 2.0 Form Post Response Mode): the answer arrives as a form
the browser posts to the redirect URI, which works without JavaScript (a Continue button)."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask
from werkzeug.test import TestResponse

from tests.conftest import ISSUER, ON_REDIS_CLUSTER, SHOP_CALLBACK
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


def posted_fields(answer: TestResponse, browser: Browser) -> dict[str, str]:
    """Check the page is a form post to the shop's callback and return what it posts."""
    assert answer.status_code == 200
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    form = browser.soup().find("form", id="response")
    assert form["method"] == "post"
    assert form["action"] == SHOP_CALLBACK
    assert form.find("button", string="Continue") is not None
    assert browser.soup().find("script")["src"].endswith("/static/form_post.js")
    return {field["name"]: field["value"] for field in form.find_all("input")}


def test_a_sign_in_answers_with_a_form_the_relying_party_can_redeem(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request = shop.authorization_request(response_mode="form_post")
    browser.start(request.url)
    browser.submit("/email", email="jenny@example.com")

    fields = posted_fields(browser.submit("/code", code=announced_code(console)), browser)

    assert fields["state"] == request.state
    assert fields["iss"] == ISSUER
    token = shop.exchange(SHOP_CALLBACK + "?" + urlencode(fields), request)
    assert shop.validate_id_token(token, request.nonce)["email"] == "jenny@example.com"


def test_an_error_is_posted_too(app: Flask, browser: Browser, shop: RelyingParty) -> None:
    request = shop.authorization_request(response_mode="form_post", prompt="none")

    fields = posted_fields(browser.get(request.url), browser)

    assert fields["error"] == "login_required"
    assert fields["state"] == request.state


def test_cancelling_posts_access_denied(browser: Browser, shop: RelyingParty) -> None:
    request = shop.authorization_request(response_mode="form_post")
    browser.start(request.url)

    fields = posted_fields(browser.submit("/cancel"), browser)

    assert fields["error"] == "access_denied"
    assert fields["state"] == request.state


def test_the_sso_session_answers_with_a_form_as_well(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    first = shop.authorization_request()
    browser.start(first.url)
    browser.submit("/email", email="jenny@example.com")
    browser.submit("/code", code=announced_code(console))

    request = shop.authorization_request(response_mode="form_post")
    fields = posted_fields(browser.get(request.url), browser)

    assert "code" in fields
    assert len(console) == 1


def test_discovery_lists_both_response_modes(app: Flask) -> None:
    document = app.test_client().get("/.well-known/openid-configuration", base_url=ISSUER)

    assert document.get_json()["response_modes_supported"] == ["query", "form_post"]
