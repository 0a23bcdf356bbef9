"""No secret in the log: a whole life through the real app, every logger at DEBUG.

Sign-in with the live Link client over HTTP (the fake Link network), a wrong code, token
exchange, refresh, userinfo, revocation, logout, and the /v1 API with an Account Link and a
Login Link; then the whole captured output is searched for every secret that was used.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import fakeredis
import pytest
import requests
from bs4 import BeautifulSoup
from flask import Flask
from requests.adapters import HTTPAdapter
from werkzeug.serving import BaseWSGIServer, make_server

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.ids import digest
from oidc_link.logs import REQUEST_FIELDS, configure_logging
from oidc_link.services import build_services
from oidc_link.web.account import ACCOUNT_COOKIE, ACCOUNT_PATH
from oidc_link.web.browser import BROWSER_COOKIE, SESSION_COOKIE
from tests.api_client import SHOP_KEY
from tests.conftest import SHOP_CALLBACK, SHOP_SECRET, provider_config
from tests.fake_link_server import FakeLinkServer
from tests.relying_party import RelyingParty, query_of

TEST_KEK = base64.urlsafe_b64encode(b"L" * 32).decode()
SIGNED_OUT = "https://shop.example.test/signed-out"
REFRESH_URL = "https://shop.example.test/onboarding/refresh"
RETURN_URL = "https://shop.example.test/onboarding/done"
LOOPBACK = "127.0.0.1"
JENNY = "jenny@example.com"
SAM = "sam@example.com"
# Libraries that log URLs, headers or bodies at DEBUG.
CHATTY_LIBRARIES = ("urllib3", "requests", "werkzeug", "authlib")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A stream for everything any logger writes (the test installs the handler on it, in
    its format; conftest.py removes it after); the HTTP libraries at DEBUG meanwhile."""
    stream = io.StringIO()
    saved_levels = {name: logging.getLogger(name).level for name in CHATTY_LIBRARIES}
    for name in ("urllib3", "requests", "werkzeug"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


@dataclass
class Provider:
    """The real app behind werkzeug's server on loopback, as `oidc-link serve` runs it
    today: its access lines go to the log too."""

    url: str
    server: BaseWSGIServer


@pytest.fixture
def provider(
    fake_link: FakeLinkServer, live_clock: FixedClock, request: pytest.FixtureRequest
) -> Iterator[Provider]:
    server = make_server(LOOPBACK, 0, _not_ready, threaded=True)
    url = f"http://{LOOPBACK}:{server.server_port}"
    try:
        server.app = app_on(url, fake_link, request.param, live_clock)
    except BaseException:
        server.server_close()
        raise
    thread = threading.Thread(target=server.serve_forever, name="log-test-provider", daemon=True)
    thread.start()
    yield Provider(url, server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _not_ready(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


def app_on(issuer: str, fake_link: FakeLinkServer, dialect: str, clock: FixedClock) -> Flask:
    config = provider_config()
    config["issuer"] = issuer
    config["link"] = {
        "mode": "live",
        "live": {
            "base_url": fake_link.url,
            "publishable_key": fake_link.publishable_key,
            "dialect": dialect,
        },
    }
    shop: dict[str, Any] = config["clients"][0]  # type: ignore[index]
    shop["refresh_tokens"] = True
    shop["post_logout_redirect_uris"] = [SIGNED_OUT]
    shop["api_keys"] = [digest(SHOP_KEY)]
    environ = {"SHOP_SECRET": SHOP_SECRET, "OIDC_LINK_KEY_ENCRYPTION_KEY": TEST_KEK}
    settings = settings_from_mapping(config, environ, "test")
    services = build_services(
        settings, clock=clock, redis_client=fakeredis.FakeRedis(decode_responses=True)
    )
    return create_app(settings, services)


class HttpBrowser:
    """A person's browser over real HTTP: keeps cookies, submits the page's forms, follows
    the provider's own redirects (not the ones to the relying party)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.page: requests.Response | None = None

    def get(self, url: str) -> requests.Response:
        self.page = self.http.get(urljoin(self.base_url, url), allow_redirects=False, timeout=10)
        return self.page

    def start(self, authorization_url: str) -> requests.Response:
        answer = self.get(authorization_url)
        return self.get(answer.headers["Location"]) if answer.status_code == 303 else answer

    def soup(self) -> BeautifulSoup:
        assert self.page is not None
        return BeautifulSoup(self.page.text, "html.parser")

    def submit(self, action_suffix: str, **fields: str) -> requests.Response:
        form = next(
            f for f in self.soup().find_all("form") if f.get("action", "").endswith(action_suffix)
        )
        data = {
            field["name"]: field.get("value", "")
            for field in form.find_all("input")
            if field.get("name")
        }
        data.update(fields)
        self.page = self.http.post(
            urljoin(self.base_url, form["action"]), data=data, allow_redirects=False, timeout=10
        )
        location = self.page.headers.get("Location", "")
        if self.page.status_code == 303 and (
            location.startswith("/") or location.startswith(self.base_url)
        ):
            return self.get(location)
        return self.page

    def cookie(self, name: str) -> str:
        value = self.http.cookies.get(name)
        assert value, f"no {name} cookie"
        return value


def relying_party(provider: Provider) -> RelyingParty:
    """The shop with Authlib's client, its requests going over real HTTP."""
    shop = RelyingParty(provider.server.app, provider.url, "shop", SHOP_CALLBACK, SHOP_SECRET)
    for session in (shop.http, shop.session):
        session.mount(provider.url, HTTPAdapter())
    return shop


def jwt_parts(token: str) -> list[str]:
    """A JWT and its payload and signature alone: a log must not hold any of them."""
    _, payload, signature = token.split(".")
    return [token, payload, signature]


def occurs(secret: str, text: str) -> bool:
    if secret.isdigit():  # an SMS code: six digits, not part of a longer number
        return re.search(rf"(?<!\d){secret}(?!\d)", text) is not None
    return secret.lower() in text


@pytest.mark.parametrize(
    ("provider", "log_format"),
    [("loginwithlink", "json"), ("stripe", "json"), ("loginwithlink", "text")],
    indirect=["provider"],
)
def test_no_secret_used_in_a_whole_sign_in_and_api_life_reaches_the_log(
    captured: io.StringIO, provider: Provider, fake_link: FakeLinkServer, log_format: str
) -> None:
    configure_logging(log_format, "DEBUG", stream=captured)
    secrets: dict[str, str] = {"client secret": SHOP_SECRET, "API key": SHOP_KEY}

    # Sign-in: login_hint, email, a wrong code, then the right one.
    shop = relying_party(provider)
    request = shop.authorization_request(login_hint=JENNY)
    browser = HttpBrowser(provider.url)
    browser.start(request.url)
    assert browser.soup().find("input", attrs={"name": "email"})["value"] == JENNY
    browser.submit("/email", email=JENNY)
    code = fake_link.last_code(JENNY)
    wrong = "123456" if code != "123456" else "654321"
    assert browser.submit("/code", code=wrong).status_code == 400
    callback = browser.submit("/code", code=code)
    assert callback.status_code == 302, callback.text
    secrets |= {
        "SMS code": code,
        "wrong SMS code": wrong,
        "authorization code": query_of(callback.headers["Location"])["code"],
        "PKCE code verifier": request.code_verifier,
        "SSO session cookie": browser.cookie(SESSION_COOKIE),
        "browser cookie": browser.cookie(BROWSER_COOKIE),
    }

    # Token exchange (client_secret_basic), refresh, userinfo, revocation, logout.
    token = shop.exchange(callback.headers["Location"], request)
    shop.validate_id_token(token, request.nonce)
    refreshed = dict(
        shop.session.refresh_token(
            shop.metadata["token_endpoint"], refresh_token=token["refresh_token"]
        )
    )
    userinfo = shop.http.get(
        shop.metadata["userinfo_endpoint"],
        headers={"Authorization": "Bearer " + refreshed["access_token"]},
    )
    assert userinfo.status_code == 200
    assert userinfo.json()["email"] == JENNY
    revoked = shop.session.revoke_token(
        shop.metadata["revocation_endpoint"],
        refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    hint = {"id_token_hint": refreshed["id_token"], "post_logout_redirect_uri": SIGNED_OUT}
    logout = browser.get("/logout?" + urlencode(hint | {"state": "bye"}))
    assert logout.status_code == 303
    for name, issued in (("first", token), ("refreshed", refreshed)):
        secrets[f"{name} access token"] = issued["access_token"]
        secrets[f"{name} refresh token"] = issued["refresh_token"]
        for index, part in enumerate(jwt_parts(issued["id_token"])):
            secrets[f"{name} ID token, part {index}"] = part

    # The /v1 API: an account, its onboarding Account Link (a sign-in), then a Login Link.
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {SHOP_KEY}"
    account = api.post(f"{provider.url}/v1/accounts", data={"type": "express", "email": SAM})
    assert account.status_code == 200, account.text
    account_id = account.json()["id"]
    created = api.post(
        f"{provider.url}/v1/account_links",
        data={
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": REFRESH_URL,
            "return_url": RETURN_URL,
        },
    )
    assert created.status_code == 200, created.text
    account_link = created.json()["url"]
    visitor = HttpBrowser(provider.url)
    visit = visitor.get(account_link)
    assert visit.status_code == 303
    visitor.get(visit.headers["Location"])
    visitor.submit("/email", email=SAM)
    onboarding_code = fake_link.last_code(SAM)
    onboarded = visitor.submit("/code", code=onboarding_code)
    assert onboarded.status_code in (302, 303)
    assert onboarded.headers["Location"] == RETURN_URL
    login = api.post(f"{provider.url}/v1/accounts/{account_id}/login_links")
    assert login.status_code == 200, login.text
    login_link = login.json()["url"]
    assert visitor.get(login_link).status_code == 303
    assert visitor.get(ACCOUNT_PATH).status_code == 200
    secrets |= {
        "SMS code of the onboarding": onboarding_code,
        "Account Link URL": account_link,
        "Account Link token": account_link.rsplit("/", 1)[1],
        "Login Link URL": login_link,
        "Login Link token": login_link.rsplit("/", 1)[1],
        "account page cookie": visitor.cookie(ACCOUNT_COOKIE),
    }
    link_secrets = fake_link.session_secrets
    assert link_secrets, "the fake Link network handed out no session"
    for index, secret in enumerate(link_secrets):
        secrets[f"Link session client secret {index}"] = secret

    output = captured.getvalue()
    text = output.lower()
    leaked = sorted(name for name, secret in secrets.items() if occurs(secret, text))
    assert leaked == []
    for email in (JENNY, SAM):
        assert email not in text
        assert quote(email) not in text  # jenny%40example.com
    assert "j***@example.com" in output  # masked, with the domain operators need
    # The capture saw the HTTP library's own DEBUG lines, about Link calls among others.
    assert "urllib3" in output
    if log_format == "json":
        check_json_lines(output)
    else:
        # The development server's access lines are there, their query strings masked.
        assert "werkzeug" in output
        assert "GET /authorize?[redacted] HTTP/1.1" in output
        assert "GET /logout?[redacted] HTTP/1.1" in output


def check_json_lines(output: str) -> None:
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    assert not [
        line for line in lines if line["logger"] == "werkzeug" and "HTTP/1.1" in line["message"]
    ]
    # A request line has a status; its event is http.request or the step's event it carries.
    requests_seen = [line for line in lines if "status" in line]
    assert len(requests_seen) >= 15
    for line in requests_seen:
        assert set(REQUEST_FIELDS) <= set(line)
        assert line["request_id"].startswith("req_")
        assert line["route"].startswith("/") and "?" not in line["route"]
        assert isinstance(line["status"], int)
        assert line["duration_ms"] >= 0
    routes = {(line["method"], line["route"]): line for line in requests_seen}
    assert routes[("POST", "/token")]["client_id"] == "shop"
    assert routes[("GET", "/authorize")]["client_id"] == "shop"
    assert routes[("POST", "/v1/account_links")]["client_id"] == "shop"
    assert ("GET", "/links/<link_id>/<token>") in routes

    events = {line.get("event") for line in lines}
    assert {"sign_in.completed", "sign_in.failed", "sms.sent", "tokens.issued", "link.call"} <= (
        events
    )
    failed = [line for line in lines if line.get("event") == "sign_in.failed"]
    assert {"reason": "wrong_code", "client_id": "shop"}.items() <= failed[0].items()
    grants = {line["grant_type"] for line in lines if line.get("event") == "tokens.issued"}
    assert grants == {"authorization_code", "refresh_token"}
