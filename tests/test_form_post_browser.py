"""response_mode=form_post in a real browser (headless Chromium), against a relying party on
loopback that accepts POST at its redirect URI (OAuth 2.0 Form Post Response Mode §2).

With JavaScript the page posts the answer by itself; without it the person presses Continue.
Either way the answer travels in the POST body, never in a URL, and the code redeems.
"""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from tests import test_browser
from tests.conftest import JENNY
from tests.live_server import (
    LiveServer,
    RelyingPartyServer,
    start_live_server,
    start_relying_party_server,
)
from tests.sandbox_console import announced_code

playwright_api = pytest.importorskip("playwright.sync_api")

# The same Chromium and fresh contexts as the other browser tests (fixtures by assignment).
chromium = test_browser.chromium
new_page = test_browser.new_page

CLIENT_ID = "form-post-rp"
CLIENT_SECRET = "form-post-secret-0123456789abcdef"


@pytest.fixture
def relying_party_server() -> Iterator[RelyingPartyServer]:
    server = start_relying_party_server()
    yield server
    server.stop()


@pytest.fixture
def live_server(relying_party_server: RelyingPartyServer) -> Iterator[LiveServer]:
    # Embedded Redis, as the demo runs: this is about what the browser posts, not storage.
    registration = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [relying_party_server.url + "/callback"],
        "name": "Form Post Shop",
    }
    server = start_live_server(fakeredis.FakeRedis(decode_responses=True), [registration])
    yield server
    server.stop()


@pytest.fixture
def rp_session(relying_party_server: RelyingPartyServer) -> Iterator[OAuth2Session]:
    with OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid email",
        redirect_uri=relying_party_server.url + "/callback",
        code_challenge_method="S256",
    ) as session:
        yield session


@pytest.mark.parametrize("javascript", [True, False], ids=["with-js", "without-js"])
def test_the_answer_is_posted_to_the_relying_party_and_its_code_redeems(
    new_page,
    live_server: LiveServer,
    relying_party_server: RelyingPartyServer,
    rp_session: OAuth2Session,
    javascript: bool,
) -> None:
    verifier = generate_token(48)
    url, state = rp_session.create_authorization_url(
        live_server.url + "/authorize",
        code_verifier=verifier,
        nonce=generate_token(20),
        response_mode="form_post",
    )
    page = new_page(javascript=javascript)
    callback = relying_party_server.url + "/callback"

    page.goto(url)
    page.get_by_label("Email").fill(JENNY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(live_server.console))
    if javascript:
        # The page's one script submits the form for the person.
        with page.expect_request(lambda request: request.url == callback) as posted:
            page.get_by_role("button", name="Verify").click()
    else:
        page.get_by_role("button", name="Verify").click()
        playwright_api.expect(
            page.get_by_role("heading", name="Returning you to the site")
        ).to_be_visible()
        assert relying_party_server.arrivals == []  # nothing is sent until they press
        with page.expect_request(lambda request: request.url == callback) as posted:
            page.get_by_role("button", name="Continue").click()

    assert posted.value.method == "POST"
    page.wait_for_url(callback)
    playwright_api.expect(page.get_by_role("heading", name="Received POST")).to_be_visible()
    # Chromium may also ask the RP for /favicon.ico; the answer itself came once.
    [arrival] = [a for a in relying_party_server.arrivals if a.path != "/favicon.ico"]
    assert (arrival.method, arrival.path, arrival.query) == ("POST", "/callback", {})
    assert set(arrival.form) == {"code", "state", "iss"}
    assert arrival.form["state"] == state
    assert arrival.form["iss"] == live_server.url  # RFC 9207
    token = rp_session.fetch_token(
        live_server.url + "/token", code=arrival.form["code"], code_verifier=verifier
    )
    assert token["token_type"].lower() == "bearer"
    assert "id_token" in token
