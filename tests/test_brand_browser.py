"""A site's brand in a real browser (headless Chromium): its logo loads under the pages'
Content-Security-Policy, without a Referer, in its fixed 64 x 64 box whatever the image's
own size; its accent colours the primary button in the light scheme and only the card's top
edge in the dark one. The provider is served over real HTTP; the logo's host is the
browser's own route, so nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests import test_browser
from tests.live_server import LiveServer, start_live_server

playwright_api = pytest.importorskip("playwright.sync_api")

# The same Chromium as the other browser tests (a fixture by assignment).
chromium = test_browser.chromium

CLIENT_ID = "branded-shop"
CALLBACK = "https://branded.example.test/callback"
LOGO = "https://cdn.branded.example.test/brand/logo.svg"
ACCENT_RGB = "rgb(91, 33, 182)"  # #5b21b6
# A wide logo, three times as wide as high: the box keeps its size, the image fits inside.
WIDE_LOGO = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100" viewBox="0 0 300 100">'
    '<rect width="300" height="100" fill="#5b21b6"/></svg>'
)


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    registration = {
        "client_id": CLIENT_ID,
        "token_endpoint_auth_method": "none",
        "redirect_uris": [CALLBACK],
        "name": "Branded Shop",
        "logo_uri": LOGO,
        "policy_uri": "https://branded.example.test/privacy",
        "accent_color": "#5B21B6",
    }
    server = start_live_server(fakeredis.FakeRedis(decode_responses=True), [registration])
    yield server
    server.stop()


def authorization_url(server: LiveServer) -> str:
    with OAuth2Session(
        CLIENT_ID, scope="openid email", redirect_uri=CALLBACK, code_challenge_method="S256"
    ) as session:
        url, _ = session.create_authorization_url(
            server.url + "/authorize", code_verifier=generate_token(48), nonce=generate_token(20)
        )
    return url


@pytest.fixture
def email_page(chromium: Any, live_server: LiveServer) -> Iterator[Any]:
    """A function opening the branded email page in a fresh context of a colour scheme;
    each page's ``logo_requests`` and ``console`` say what it fetched and complained of."""
    contexts: list[Any] = []

    def open_page(color_scheme: str) -> Any:
        context = chromium.new_context(color_scheme=color_scheme)
        contexts.append(context)
        page = context.new_page()
        page.logo_requests = []
        page.console = []
        page.on("console", lambda message: page.console.append(message.text))

        def serve_logo(route: Any) -> None:
            page.logo_requests.append(route.request.headers)
            route.fulfill(status=200, content_type="image/svg+xml", body=WIDE_LOGO)

        page.route(LOGO, serve_logo)
        page.goto(authorization_url(live_server))
        playwright_api.expect(page.get_by_label("Email")).to_be_visible()
        return page

    yield open_page
    for context in contexts:
        context.close()


def test_the_logo_loads_without_a_referrer_into_its_fixed_box(email_page: Any) -> None:
    page = email_page("light")
    logo = page.get_by_role("img", name="Branded Shop")

    playwright_api.expect(logo).to_be_visible()
    page.wait_for_function("document.querySelector('img.brand-logo').complete")
    assert logo.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [300, 100]
    box = logo.bounding_box()
    assert (box["width"], box["height"]) == (64, 64)
    assert logo.get_attribute("referrerpolicy") == "no-referrer"
    assert len(page.logo_requests) == 1
    assert "referer" not in {name.lower() for name in page.logo_requests[0]}
    assert not [text for text in page.console if "Content Security Policy" in text]


def test_the_accent_colours_the_primary_button_in_the_light_scheme(email_page: Any) -> None:
    page = email_page("light")
    button = page.get_by_role("button", name="Continue")

    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == ACCENT_RGB
    assert button.evaluate("b => getComputedStyle(b).color") == "rgb(255, 255, 255)"
    policy = page.get_by_role("link", name="Privacy policy")
    assert policy.evaluate("a => getComputedStyle(a).color") == ACCENT_RGB
    assert not [text for text in page.console if "Content Security Policy" in text]


def test_in_the_dark_scheme_the_accent_is_only_the_cards_top_edge(email_page: Any) -> None:
    page = email_page("dark")
    card = page.locator("main")
    button = page.get_by_role("button", name="Continue")

    assert card.evaluate("c => getComputedStyle(c).borderTopColor") == ACCENT_RGB
    assert card.evaluate("c => getComputedStyle(c).borderTopWidth") == "4px"
    # The dark palette's own primary (site.css), readable on the dark card.
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(61, 220, 151)"
