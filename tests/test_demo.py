"""The demo end to end over real HTTP: a browser signs in at the sample RP through the provider."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
from bs4 import BeautifulSoup
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

from oidc_link.config import ConfigError
from oidc_link.demo import (
    DEMO_BRAND,
    DEMO_EMAIL,
    DEMO_NAME,
    RunningDemo,
    demo_settings,
    start_demo,
)
from oidc_link.demo.rp import create_rp_app

CODE_LINE = re.compile(r"code for (\S+): (\d{6})")


@dataclass
class Demo:
    running: RunningDemo
    console: list[str]

    def code_for(self, email: str) -> str:
        matches = (CODE_LINE.search(line) for line in self.console)
        codes = [m.group(2) for m in matches if m and m.group(1) == email]
        assert codes, f"no code announced for {email}: {self.console}"
        return codes[-1]


@pytest.fixture
def demo() -> Iterator[Demo]:
    console: list[str] = []
    running = start_demo(announce=console.append)
    try:
        yield Demo(running, console)
    finally:
        running.stop()


def form_with(page: requests.Response, field: str) -> tuple[str, dict[str, str]]:
    """The action and the named fields of the page's form that has an input ``field``."""
    soup = BeautifulSoup(page.text, "html.parser")
    for form in soup.find_all("form"):
        if form.find("input", attrs={"name": field}):
            return urljoin(page.url, form.get("action") or page.url), form_fields(form)
    raise AssertionError(f"no form with a {field!r} field on {page.url}:\n{page.text}")


def form_fields(form: Any) -> dict[str, str]:
    return {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}


def claims_table(page: requests.Response) -> dict[str, str]:
    table = BeautifulSoup(page.text, "html.parser").find("table", id="claims")
    assert table is not None, f"no claims on {page.url}:\n{page.text}"
    rows = table.find_all("tr")
    return {row.th.get_text(strip=True): row.td.get_text(strip=True) for row in rows}


def form_with_button(page: requests.Response, label: str) -> tuple[str, dict[str, str]]:
    soup = BeautifulSoup(page.text, "html.parser")
    button = soup.find("button", string=re.compile(label))
    assert button is not None, page.text
    form = button.find_parent("form")
    return urljoin(page.url, form["action"]), form_fields(form)


def claims_table_absent(page: requests.Response) -> bool:
    return BeautifulSoup(page.text, "html.parser").find("table", id="claims") is None


def error_shown(page: requests.Response) -> str:
    alert = BeautifulSoup(page.text, "html.parser").find(attrs={"role": "alert"})
    assert alert is not None, f"no error on {page.url}:\n{page.text}"
    return alert.get_text(" ", strip=True)


def sign_in_until_code_redirect(demo: Demo, browser: requests.Session) -> str:
    """Walk the hosted pages and return the provider's redirect back to the RP, unfollowed."""
    page = browser.get(demo.running.rp_url + "/login", timeout=10)
    assert page.status_code == 200
    # The email page is the answer to /authorize itself; the code page is the flow's own.
    assert page.url.startswith(demo.running.provider_url + "/authorize?")

    action, fields = form_with(page, "email")
    assert fields["csrf_token"]
    page = browser.post(action, data={**fields, "email": DEMO_EMAIL}, timeout=10)
    assert page.status_code == 200
    assert page.url.startswith(demo.running.provider_url + "/signin/")

    action, fields = form_with(page, "code")
    code = demo.code_for(DEMO_EMAIL)
    answer = browser.post(action, data={**fields, "code": code}, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text
    location = answer.headers["Location"]
    assert location.startswith(demo.running.rp_url + "/callback?")
    return location


def test_a_browser_signs_in_at_the_demo_shop_with_the_code_from_the_console(demo: Demo) -> None:
    browser = requests.Session()
    home = browser.get(demo.running.rp_url + "/", timeout=10)
    assert "Log in with Link" in home.text

    callback = sign_in_until_code_redirect(demo, browser)
    query = parse_qs(urlsplit(callback).query)
    assert query["iss"] == [demo.running.provider_url]
    assert query["state"] and query["code"]

    page = browser.get(callback, timeout=10)
    assert page.status_code == 200
    assert page.url == demo.running.rp_url + "/"
    claims = claims_table(page)
    assert claims["email"] == DEMO_EMAIL
    assert claims["name"] == DEMO_NAME
    assert claims["iss"] == demo.running.provider_url
    assert claims["aud"] == "demo-rp"
    assert claims["sub"]
    assert "Sign out" in page.text

    action, fields = form_with_button(page, "Sign out")
    page = browser.post(action, data=fields, timeout=10)
    assert page.url == demo.running.rp_url + "/"
    assert [step.headers["Location"].split("?")[0] for step in page.history[:2]] == [
        demo.running.provider_url + "/logout",
        demo.running.rp_url + "/signed-out",
    ]
    assert "Log in with Link" in page.text
    assert "jenny@example.com" not in page.text
    # The Link session ended too: the next sign-in asks for the email again.
    again = browser.get(demo.running.rp_url + "/login", timeout=10)
    assert again.url.startswith(demo.running.provider_url + "/authorize?")
    assert 'name="email"' in again.text


def test_the_authorization_code_works_only_once_at_the_shop(demo: Demo) -> None:
    browser = requests.Session()
    callback = sign_in_until_code_redirect(demo, browser)
    assert browser.get(callback, timeout=10).url == demo.running.rp_url + "/"

    replay = browser.get(callback, timeout=10)
    assert replay.status_code == 400
    assert "Sign-in failed" in replay.text


@pytest.mark.parametrize("iss", ["https://evil.example", None], ids=["other-issuer", "no-issuer"])
def test_the_shop_rejects_an_authorization_response_not_naming_its_issuer(
    demo: Demo, iss: str | None
) -> None:
    browser = requests.Session()
    callback = sign_in_until_code_redirect(demo, browser)
    parts = urlsplit(callback)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if iss is None:
        del query["iss"]
    else:
        query["iss"] = iss
    page = browser.get(urlunsplit(parts._replace(query=urlencode(query))), timeout=10)
    assert page.status_code == 400
    assert "wrong_issuer" in error_shown(page)
    assert claims_table_absent(page)


def test_a_user_who_cancels_is_told_so_by_the_shop(demo: Demo) -> None:
    browser = requests.Session()
    page = browser.get(demo.running.rp_url + "/login", timeout=10)
    action, fields = form_with_button(page, "Back to")
    page = browser.post(action, data=fields, timeout=10)
    assert page.url.startswith(demo.running.rp_url + "/callback?")
    assert page.status_code == 400
    assert "access_denied" in error_shown(page)


def test_the_shop_shows_an_error_the_provider_sends_back(demo: Demo) -> None:
    page = requests.get(
        demo.running.rp_url + "/callback",
        params={"error": "access_denied", "error_description": "The user <b>cancelled</b>"},
        timeout=10,
    )
    assert page.status_code == 400
    shown = error_shown(page)
    assert "access_denied" in shown
    assert "The user <b>cancelled</b>" in shown
    assert "<b>cancelled" not in page.text  # escaped, not markup
    assert 'href="/"' in page.text


def test_the_shop_refuses_a_provider_whose_metadata_names_another_issuer(demo: Demo) -> None:
    # The same provider reached under another name: its metadata names 127.0.0.1, not localhost.
    alias = demo.running.provider_url.replace("127.0.0.1", "localhost")
    rp = create_rp_app(alias, "demo-rp", "not-the-secret-but-long-enough", "http://127.0.0.1:9")
    page = rp.test_client().get("/login")
    assert page.status_code == 400
    assert b"wrong_issuer" in page.data


def test_the_shops_login_link_carries_ui_locales_to_the_provider(demo: Demo) -> None:
    browser = requests.Session()
    start = browser.get(
        demo.running.rp_url + "/login",
        params={"ui_locales": "pt-BR en"},
        allow_redirects=False,
        timeout=10,
    )
    assert start.status_code == 302
    to_provider = urlsplit(start.headers["Location"])
    assert to_provider.path == "/authorize"
    assert parse_qs(to_provider.query)["ui_locales"] == ["pt-BR en"]

    page = browser.get(start.headers["Location"], timeout=10)
    assert page.status_code == 200
    assert 'name="email"' in page.text


@pytest.mark.parametrize(
    "ui_locales",
    [
        "fr<script>",
        "fr,de",
        " fr",
        "fr  de",
        "-fr",
        "x" * 9,
        "fr-" + "a" * 9,
        " ".join(["fr"] * 40),  # each a tag, too many together
    ],
)
def test_the_shop_refuses_ui_locales_that_are_not_language_tags(
    demo: Demo, ui_locales: str
) -> None:
    page = requests.get(
        demo.running.rp_url + "/login",
        params={"ui_locales": ui_locales},
        allow_redirects=False,
        timeout=10,
    )
    assert page.status_code == 400
    assert "invalid_ui_locales" in error_shown(page)
    assert "<script>" not in page.text


def test_the_branded_demo_shows_the_shops_accent_and_links_on_its_email_page() -> None:
    running = start_demo(client_options=DEMO_BRAND)
    try:
        page = requests.get(running.rp_url + "/login", timeout=10)
        assert page.status_code == 200
        soup = BeautifulSoup(page.text, "html.parser")
        links = {a.get_text(" ", strip=True): a["href"] for a in soup.select(".brand-links a")}
        assert links == {
            "Privacy policy (opens in a new tab)": DEMO_BRAND["policy_uri"],
            "Terms of service (opens in a new tab)": DEMO_BRAND["tos_uri"],
        }
        assert soup.select_one("img.brand-logo") is None  # no https logo on loopback
        sheet = soup.find("link", href=re.compile(r"/brand/accent-"))
        assert sheet is not None
        css = requests.get(urljoin(page.url, sheet["href"]), timeout=10)
        assert css.status_code == 200
        assert DEMO_BRAND["accent_color"] in css.text
    finally:
        running.stop()


def test_the_demo_checks_its_clients_options_like_any_configuration() -> None:
    with pytest.raises(ConfigError, match="logo_uri"):
        demo_settings(
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5001",
            {"logo_uri": "http://127.0.0.1:5001/logo.svg"},
        )
    branded = demo_settings("http://127.0.0.1:5000", "http://127.0.0.1:5001", DEMO_BRAND)
    client = branded.client("demo-rp")
    assert client is not None and client.brand.accent_color == DEMO_BRAND["accent_color"]


# A stand-in provider that signs ID tokens as told, to show the RP checks each claim.


@dataclass
class FakeProvider:
    url: str
    tamper: Callable[[dict[str, Any]], None] | None = None


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    good_key = RSAKey.generate_key(2048, parameters={"kid": "good", "use": "sig"})
    other_key = RSAKey.generate_key(2048, parameters={"kid": "good", "use": "sig"})
    server = make_server("127.0.0.1", 0, Flask("fake"), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    fake = FakeProvider(url)
    app = Flask("fake-provider")
    nonces: dict[str, str] = {}

    @app.get("/.well-known/openid-configuration")
    def metadata() -> Any:
        return jsonify(
            issuer=url,
            authorization_endpoint=url + "/authorize",
            token_endpoint=url + "/token",
            jwks_uri=url + "/jwks.json",
            id_token_signing_alg_values_supported=["RS256"],
        )

    @app.get("/jwks.json")
    def jwks() -> Any:
        return jsonify(keys=[good_key.as_dict(private=False)])

    @app.get("/authorize")
    def authorize() -> Any:
        nonces["code-1"] = request.args["nonce"]
        query = urlencode({"code": "code-1", "state": request.args["state"], "iss": url})
        return redirect(request.args["redirect_uri"] + "?" + query)

    @app.post("/token")
    def token() -> Any:
        now = int(time.time())
        claims = {
            "iss": url,
            "sub": "acct_1",
            "aud": "demo-rp",
            "iat": now,
            "exp": now + 300,
            "nonce": nonces[request.form["code"]],
            "email": DEMO_EMAIL,
        }
        key = good_key
        if fake.tamper is not None:
            fake.tamper(claims)
        if claims.pop("_sign_with_other_key", False):
            key = other_key
        id_token = jwt.encode({"alg": "RS256", "kid": "good"}, claims, key)
        return jsonify(access_token="at", token_type="Bearer", expires_in=300, id_token=id_token)

    server.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def sign_in_at(rp: Flask) -> Any:
    """Drive the RP with its test client; the fake provider answers over real HTTP."""
    client = rp.test_client()
    start = client.get("/login")
    assert start.status_code == 302
    to_provider = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(to_provider.headers["Location"])
    return client.get(back.path + "?" + back.query)


def test_the_shop_accepts_a_well_formed_id_token_from_the_stand_in(
    fake_provider: FakeProvider,
) -> None:
    rp = create_rp_app(fake_provider.url, "demo-rp", "secret-secret-secret", "http://127.0.0.1:9")
    assert sign_in_at(rp).status_code == 302


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: c.update(_sign_with_other_key=True), id="signed-by-another-key"),
        pytest.param(lambda c: c.update(iss="https://evil.example"), id="other-issuer"),
        pytest.param(lambda c: c.update(aud="another-client"), id="other-audience"),
        pytest.param(
            lambda c: c.update(aud="another-client", azp="demo-rp"), id="other-audience-with-azp"
        ),
        pytest.param(lambda c: c.update(nonce="replayed"), id="other-nonce"),
        pytest.param(lambda c: c.pop("nonce"), id="no-nonce"),
        pytest.param(lambda c: c.update(exp=int(time.time()) - 3600), id="expired"),
    ],
)
def test_the_shop_rejects_an_id_token_that_fails_verification(
    fake_provider: FakeProvider, tamper: Callable[[dict[str, Any]], None]
) -> None:
    fake_provider.tamper = tamper
    rp = create_rp_app(fake_provider.url, "demo-rp", "secret-secret-secret", "http://127.0.0.1:9")
    page = sign_in_at(rp)
    assert page.status_code == 400
    assert b"invalid_id_token" in page.data


def test_demo_settings_give_the_shop_a_fresh_secret_each_run() -> None:
    first = demo_settings("http://127.0.0.1:5000", "http://127.0.0.1:5001")
    second = demo_settings("http://127.0.0.1:5000", "http://127.0.0.1:5001")
    client = first.client("demo-rp")
    assert client is not None and client.redirect_uris == ("http://127.0.0.1:5001/callback",)
    assert client.client_secret != second.client("demo-rp").client_secret
    assert first.is_sandbox


def test_the_demo_refuses_to_serve_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        start_demo(host="0.0.0.0")  # noqa: S104 - refused before anything binds
