"""A person in a real browser (headless Chromium, JavaScript off) answers the sign-out
question that a site's logout link leads to.

The provider is served over real HTTP on loopback, and so is a bare relying party that only
shows what it was sent back (its callback and its signed-out page).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from oidc_link import create_app
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from tests.conftest import JENNY, SHOP_SECRET, provider_config
from tests.sandbox_console import announced_code
from tests.test_browser import chromium, new_page, playwright_api  # noqa: F401 - fixtures

expect = playwright_api.expect


@dataclass
class Sites:
    provider_url: str
    rp_url: str
    console: list[str]

    @property
    def signed_out_uri(self) -> str:
        return self.rp_url + "/signed-out"

    def authorization_url(self, **extra: str) -> str:
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        parameters = {
            "response_type": "code",
            "client_id": "shop",
            "redirect_uri": self.rp_url + "/callback",
            "scope": "openid email",
            "state": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return self.provider_url + "/authorize?" + urlencode(parameters)


def _relying_party(environ: dict, start_response: Callable) -> list[bytes]:
    """Shows the query it was sent to, so the test can read it."""
    request = Request(environ)
    body = (
        "<!doctype html><title>Example Shop</title>"
        f"<h1>Example Shop {escape(request.path)}</h1>"
        f"<p id='query'>{escape(request.query_string.decode())}</p>"
    )
    return Response(body, mimetype="text/html")(environ, start_response)


@pytest.fixture
def sites() -> Iterator[Sites]:
    provider_server = make_server("127.0.0.1", 0, _relying_party, threaded=True)
    rp_server = make_server("127.0.0.1", 0, _relying_party, threaded=True)
    provider_url = f"http://127.0.0.1:{provider_server.server_port}"
    rp_url = f"http://127.0.0.1:{rp_server.server_port}"
    config = provider_config()
    config["issuer"] = provider_url
    clients = config["clients"]
    assert isinstance(clients, list)
    clients[0]["redirect_uris"] = [rp_url + "/callback"]
    clients[0]["post_logout_redirect_uris"] = [rp_url + "/signed-out"]
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    console: list[str] = []
    provider_server.app = create_app(settings, build_services(settings, announce=console.append))
    threads = [
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        for server in (provider_server, rp_server)
    ]
    for thread in threads:
        thread.start()
    yield Sites(provider_url, rp_url, console)
    for server in (provider_server, rp_server):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=10)


def _sign_in(page, sites: Sites) -> None:
    page.goto(sites.authorization_url())
    page.get_by_label("Email").fill(JENNY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(sites.console))
    page.get_by_role("button", name="Verify").click()
    assert page.url.startswith(sites.rp_url + "/callback?code=")


def _logout_url(sites: Sites, state: str) -> str:
    parameters = {
        "client_id": "shop",
        "post_logout_redirect_uri": sites.signed_out_uri,
        "state": state,
    }
    return sites.provider_url + "/logout?" + urlencode(parameters)


def test_a_person_confirms_signing_out_and_returns_to_the_shop_signed_out(
    new_page,  # noqa: F811 - the fixture imported above
    sites: Sites,
) -> None:
    page = new_page()
    _sign_in(page, sites)

    page.goto(_logout_url(sites, "after-logout"))
    expect(page.get_by_role("heading", name="Sign out of Link?")).to_be_visible()
    assert "Example Shop asked to sign you out" in page.locator("main").inner_text()
    expect(page.get_by_role("button", name="Stay signed in")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    assert page.url == sites.signed_out_uri + "?state=after-logout"
    page.goto(sites.authorization_url(prompt="none"))
    assert page.url.startswith(sites.rp_url + "/callback?")
    assert "error=login_required" in page.locator("#query").inner_text()


def test_a_person_who_stays_signed_in_is_still_signed_in(
    new_page,  # noqa: F811 - the fixture imported above
    sites: Sites,
) -> None:
    page = new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    _sign_in(page, sites)

    page.goto(_logout_url(sites, "kept"))
    page.get_by_role("button", name="Stay signed in").click()

    expect(page.get_by_role("heading", name="You are still signed in")).to_be_visible()
    page.get_by_role("link", name="Back to Example Shop").click()
    assert page.url.startswith(sites.rp_url)
    page.goto(sites.authorization_url(prompt="none"))
    assert page.url.startswith(sites.rp_url + "/callback?code=")
    assert not [v for v in violations if "Content Security Policy" in v]
