"""A person in a real browser (headless Chromium) meets the consent page of a third-party site.

The provider runs on a loopback port with one third-party client; the "site" is a tiny
server that shows what arrived at its callback. JavaScript is off: the pages must not need it.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import fakeredis
import pytest
from werkzeug.serving import make_server

from oidc_link import create_app
from oidc_link.config import settings_from_mapping
from oidc_link.demo import DEMO_EMAIL, DEMO_NAME, DEMO_PHONE
from oidc_link.services import build_services
from tests.relying_party import PKCE
from tests.sandbox_console import announced_code
from tests.test_browser import chromium, new_page, playwright_api  # noqa: F401 - fixtures

expect = playwright_api.expect


@dataclass(frozen=True)
class Sites:
    provider_url: str
    callback_url: str

    def authorization_url(self, **extra: str) -> str:
        query = {
            "response_type": "code",
            "client_id": "partner",
            "redirect_uri": self.callback_url,
            "scope": "openid email profile",
            "state": "state-from-the-site",
            "nonce": "nonce-from-the-site",
            **PKCE,
            **extra,
        }
        return f"{self.provider_url}/authorize?{urlencode(query)}"


def callback_page(environ: dict, start_response: Callable) -> list[bytes]:
    """The third-party site's callback: lists the parameters it received."""
    items = parse_qsl(environ.get("QUERY_STRING", ""))
    rows = "".join(f"<li>{html.escape(k)}={html.escape(v)}</li>" for k, v in items)
    body = f"<!doctype html><title>Partner</title><h1>Partner callback</h1><ul>{rows}</ul>"
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [body.encode()]


@pytest.fixture
def console() -> list[str]:
    return []


@pytest.fixture
def sites(console: list[str]) -> Iterator[Sites]:
    provider = make_server("127.0.0.1", 0, callback_page, threaded=True)
    site = make_server("127.0.0.1", 0, callback_page, threaded=True)
    provider_url = f"http://127.0.0.1:{provider.server_port}"
    callback_url = f"http://127.0.0.1:{site.server_port}/callback"
    settings = settings_from_mapping(
        {
            "issuer": provider_url,
            "link": {
                "mode": "sandbox",
                "sandbox": {
                    "users": [{"email": DEMO_EMAIL, "phone": DEMO_PHONE, "name": DEMO_NAME}]
                },
            },
            "clients": [
                {
                    "client_id": "partner",
                    "client_secret": "partner-secret-0123456789abcdef",
                    "redirect_uris": [callback_url],
                    "name": "Partner App",
                    "third_party": True,
                }
            ],
        },
        {},
        "test",
    )
    services = build_services(
        settings, redis_client=fakeredis.FakeRedis(decode_responses=True), announce=console.append
    )
    provider.app = create_app(settings, services)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (provider, site)]
    for thread in threads:
        thread.start()
    yield Sites(provider_url, callback_url)
    for server in (provider, site):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=10)


def sign_in(page, sites: Sites, console: list[str]) -> None:
    page.goto(sites.authorization_url())
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(console))
    page.get_by_role("button", name="Verify").click()


def test_a_person_allows_a_third_party_site_by_keyboard_and_lands_there_with_a_code(
    new_page,  # noqa: F811 - the fixture imported above
    sites: Sites,
    console: list[str],
) -> None:
    page = new_page()
    sign_in(page, sites, console)

    expect(
        page.get_by_role("heading", name="Allow Partner App to use your Link sign-in?")
    ).to_be_visible()
    asks = page.get_by_role("list", name="Partner App wants to:")
    expect(asks.get_by_role("listitem")).to_have_text(
        ["Know that it's you when you sign in", "See your email address", "See your name"]
    )
    expect(page.get_by_text(DEMO_EMAIL)).to_be_visible()
    allow = page.get_by_role("button", name="Allow")
    deny = page.get_by_role("button", name="Deny")
    expect(deny).to_be_visible()
    # Nothing is preselected: the person reaches Allow by the keyboard, with a visible focus.
    expect(allow).not_to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(allow).to_be_focused()
    assert allow.evaluate("b => getComputedStyle(b).outlineStyle") != "none"

    page.keyboard.press("Enter")

    page.wait_for_url(sites.callback_url + "?*")
    received = page.get_by_role("listitem").all_inner_texts()
    assert "state=state-from-the-site" in received
    assert any(item.startswith("code=") for item in received)
    assert len(console) == 1


def test_a_person_denies_and_the_site_hears_access_denied(
    new_page,  # noqa: F811 - the fixture imported above
    sites: Sites,
    console: list[str],
) -> None:
    page = new_page()
    sign_in(page, sites, console)

    page.get_by_role("button", name="Deny").click()

    page.wait_for_url(sites.callback_url + "?*")
    received = page.get_by_role("listitem").all_inner_texts()
    assert "error=access_denied" in received
    assert "state=state-from-the-site" in received
    # Asked again next time: nothing was remembered, and the session spares the SMS.
    page.goto(sites.authorization_url())
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    assert len(console) == 1
