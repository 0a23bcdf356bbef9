"""Hosted pages and public documents: what the user and the RP's library see."""

from __future__ import annotations

import logging

import flask
import pytest
from bs4 import BeautifulSoup
from flask import Flask

from oidc_link.clock import FixedClock
from oidc_link.store import Store
from oidc_link.web.pages import flow_page_url
from tests.conftest import ISSUER, JENNY, SHOP_SECRET, SPA_CALLBACK
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code

# OpenID Connect Discovery 1.0 §3: the members a provider MUST publish.
REQUIRED_DISCOVERY_MEMBERS = {
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
}


def test_discovery_publishes_every_required_member_and_the_exact_issuer(app: Flask) -> None:
    answer = app.test_client().get("/.well-known/openid-configuration", base_url=ISSUER)
    document = answer.get_json()

    assert set(document) >= REQUIRED_DISCOVERY_MEMBERS
    assert document["issuer"] == ISSUER
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["request_uri_parameter_supported"] is False
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_every_endpoint_in_discovery_answers(app: Flask) -> None:
    client = app.test_client()
    document = client.get("/.well-known/openid-configuration", base_url=ISSUER).get_json()

    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert document[name].startswith(ISSUER + "/")
        path = document[name].removeprefix(ISSUER)
        assert client.options(path, base_url=ISSUER).status_code == 200, name


def test_the_jwks_holds_only_public_key_members(app: Flask) -> None:
    (key,) = app.test_client().get("/jwks.json", base_url=ISSUER).get_json()["keys"]

    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}


def test_hosted_pages_carry_strict_security_headers(browser: Browser, shop: RelyingParty) -> None:
    page = browser.start(shop.authorization_request().url)

    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_the_email_and_code_inputs_are_labelled_for_people_and_password_managers(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.start(shop.authorization_request().url)
    soup = browser.soup()
    email = soup.find("input", attrs={"name": "email"})
    assert email["autocomplete"] == "email"
    assert soup.find("label", attrs={"for": email["id"]}).get_text(strip=True) == "Email"

    browser.submit("/email", email=JENNY)
    soup = browser.soup()
    code = soup.find("input", attrs={"name": "code"})
    assert code["autocomplete"] == "one-time-code"
    assert code["inputmode"] == "numeric"
    assert soup.find("label", attrs={"for": code["id"]}).get_text(strip=True) == (
        "Verification code"
    )
    assert "+1********23" in soup.get_text()


def test_every_form_and_asset_of_the_sign_in_pages_names_the_route_that_serves_it(
    app: Flask, browser: Browser, shop: RelyingParty
) -> None:
    # The pages build their URLs from one prefix each (docs/performance.md), not url_for per
    # form: each must still be the URL url_for gives for its route.
    adapter = app.url_map.bind("login.example.test")
    expected = {
        "/email": ("pages.submit_email", {"/cancel": "pages.cancel"}),
        "/code": (
            "pages.submit_code",
            {"/resend": "pages.resend_code", "/restart": "pages.restart"},
        ),
    }
    browser.start(shop.authorization_request().url)
    for step, (endpoint, actions) in expected.items():
        flow_id = browser.flow_path().rsplit("/", 1)[1]
        soup = browser.soup()
        posted = {form["action"] for form in soup.find_all("form")}
        wanted = {step: endpoint, **actions}
        with app.test_request_context(base_url=ISSUER):
            assert posted == {
                flask.url_for(name, flow_id=flow_id) for name in wanted.values()
            }
            assets = {link["href"] for link in soup.find_all("link")}
            assert assets == {
                flask.url_for("static", filename="site.css"),
                flask.url_for("static", filename="logo.svg"),
            }
        for action in posted:
            assert adapter.match(action, "POST")[0] in wanted.values()
        if step == "/email":
            browser.submit("/email", email=JENNY)


@pytest.mark.parametrize("mounted_at", ["", "/idp", "/a%20b"])
@pytest.mark.parametrize("flow_id", ["flow_3kT-x_9", "not ours/é?#", "flow.dot"])
def test_a_flow_pages_url_is_the_one_url_for_gives_for_its_route(
    app: Flask, mounted_at: str, flow_id: str
) -> None:
    """The email POST's redirect and the pages' forms build it by hand (docs/performance.md)."""
    with app.test_request_context(base_url=ISSUER + mounted_at):
        by_hand = flow_page_url(flask.request, flow_id)
        assert by_hand == flask.url_for("pages.show", flow_id=flow_id)


def test_the_email_posts_redirect_is_the_flow_pages_url(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.start(shop.authorization_request().url)
    flow_path = browser.flow_path()

    browser.submit("/email", email=JENNY)

    assert browser.page is not None
    assert browser.page.request.path == flow_path


@pytest.mark.parametrize(
    "query", ["", "?notice=", "?notice=nonsense", "?notice=WRONG_CODE", "?x=1"]
)
def test_a_flow_page_whose_query_names_no_notice_we_know_shows_no_message(
    browser: Browser, shop: RelyingParty, query: str
) -> None:
    browser.start(shop.authorization_request().url)

    page = browser.get(browser.flow_path() + query)

    assert page.status_code == 200
    assert browser.soup().find(attrs={"role": "alert"}) is None
    assert browser.soup().find("input", attrs={"name": "email"}) is not None


def test_a_flow_page_whose_query_names_a_notice_shows_its_message(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.start(shop.authorization_request().url)

    page = browser.get(browser.flow_path() + "?notice=invalid_email")

    assert page.status_code == 400
    alert = browser.soup().find(attrs={"role": "alert"})
    assert alert is not None
    assert "Enter an email address like name@example.com." in alert.get_text()


def test_an_expired_sign_in_shows_an_error_page_with_the_request_id(
    browser: Browser, shop: RelyingParty, live_clock: FixedClock
) -> None:
    browser.start(shop.authorization_request().url)
    live_clock.advance(601)

    answer = browser.submit("/email", email=JENNY)

    assert answer.status_code == 410
    assert "expired" in answer.get_data(as_text=True)
    assert browser.soup().find("a", string="Back to Example Shop") is not None
    assert answer.headers["Request-Id"] in answer.get_data(as_text=True)


def test_a_form_without_its_csrf_token_is_refused(browser: Browser, shop: RelyingParty) -> None:
    browser.start(shop.authorization_request().url)

    answer = browser.submit("/email", email=JENNY, csrf_token="forged")

    assert answer.status_code == 400
    assert "out of date" in answer.get_data(as_text=True)


def test_an_unknown_page_is_a_friendly_404(app: Flask) -> None:
    answer = app.test_client().get("/signin/flow_nope", base_url=ISSUER)

    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert "Traceback" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("code", ["12345", "abcdef", ""])
def test_a_malformed_code_asks_for_six_digits(
    browser: Browser, shop: RelyingParty, code: str
) -> None:
    browser.start(shop.authorization_request().url)
    browser.submit("/email", email=JENNY)

    answer = browser.submit("/code", code=code)

    assert answer.status_code == 400
    assert "6-digit" in browser.soup().find(attrs={"role": "alert"}).get_text()


def test_no_secret_reaches_the_logs_or_the_browser(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pages: list[str] = []
    request = shop.authorization_request()
    browser.start(request.url)
    pages.append(browser.page.get_data(as_text=True))
    browser.submit("/email", email=JENNY)
    pages.append(browser.page.get_data(as_text=True))
    code = announced_code(console)
    callback = browser.submit("/code", code=code).headers["Location"]
    token = shop.exchange(callback, request)

    secrets = [code, token["access_token"], token["id_token"], SHOP_SECRET]
    secrets.append(callback.split("code=", 1)[1].split("&", 1)[0])
    logged = caplog.text
    for secret in secrets:
        assert secret not in logged
    # The Link session secret stays on the server: not in a page, not in a log line.
    assert "sandbox_cs_" not in logged
    for page in pages:
        assert "sandbox_cs_" not in page


def test_the_whole_flow_works_after_a_wrong_then_expired_magic_code(
    browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    request = shop.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    assert browser.submit("/code", code="000002").status_code == 400
    assert "expired" in browser.soup().find(attrs={"role": "alert"}).get_text()

    live_clock.advance(30)  # the resend cooldown
    browser.submit("/resend")
    answer = browser.submit("/code", code=announced_code(console))

    assert answer.status_code == 302
    assert len(console) == 2


def test_a_wrong_method_on_a_hosted_page_names_the_allowed_ones(app: Flask) -> None:
    answer = app.test_client().get("/signin/flow_unknown/email", base_url=ISSUER)

    assert answer.status_code == 405
    assert answer.mimetype == "text/html"
    assert answer.headers["Allow"] == "OPTIONS, POST"  # RFC 9110 §15.5.6


# --- Form posts from other sites, control characters, a code at the wrong step ---


def _email_form(browser: Browser) -> tuple[str, dict[str, str]]:
    """The email form's action and fields, as the page shows them."""
    form = browser.soup().find("form", action=lambda a: a and a.endswith("/email"))
    fields = {field["name"]: field.get("value", "") for field in form.find_all("input")}
    return form["action"], fields


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://login.example.test:8443"},
        {"Origin": "http://login.example.test"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": ISSUER, "Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_sign_in_form_posted_from_another_site_is_refused_with_a_403_page(
    browser: Browser,
    shop: RelyingParty,
    store: Store,
    console: list[str],
    headers: dict[str, str],
) -> None:
    browser.start(shop.authorization_request().url)
    action, fields = _email_form(browser)
    flow_id = action.split("/")[2]
    before = store.flows.load(flow_id)

    answer = browser.client.post(
        action, data={**fields, "email": JENNY}, headers=headers, base_url=ISSUER
    )

    assert answer.status_code == 403
    assert answer.mimetype == "text/html"
    text = answer.get_data(as_text=True)
    assert "another website" in text
    assert "Go back to the site you came from" in text
    assert answer.headers["Request-Id"] in text
    # Refused before the view: no SMS, and the flow is as it was.
    assert console == []
    assert store.flows.load(flow_id) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": ISSUER, "Sec-Fetch-Site": "same-origin"},
        {"Origin": ISSUER.upper() + ":443"},
        # Our pages send Referrer-Policy: no-referrer, so browsers post our forms with
        # Origin: null; Sec-Fetch-Site then says where the form was.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {},
    ],
)
def test_a_sign_in_form_posted_from_our_own_page_goes_through(
    browser: Browser, shop: RelyingParty, console: list[str], headers: dict[str, str]
) -> None:
    browser.start(shop.authorization_request().url)
    action, fields = _email_form(browser)

    answer = browser.client.post(
        action, data={**fields, "email": JENNY}, headers=headers, base_url=ISSUER
    )

    assert answer.status_code == 303
    assert len(console) == 1


def test_a_token_request_with_a_cross_site_origin_is_not_a_hosted_form_post(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none")
    request = spa.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    callback = browser.submit("/code", code=announced_code(console)).headers["Location"]
    spa.session.headers.update({"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "cross-site"})

    token = spa.exchange(callback, request)

    assert token["access_token"]


@pytest.mark.parametrize("email", ["jenny\x00@example.com", "jenny@example.com\x1b[2J"])
def test_control_characters_in_the_email_show_the_form_again_with_a_message_and_400(
    browser: Browser, shop: RelyingParty, console: list[str], email: str
) -> None:
    browser.start(shop.authorization_request().url)

    answer = browser.submit("/email", email=email)

    assert answer.status_code == 400
    soup = browser.soup()
    assert "invisible characters" in soup.find(attrs={"role": "alert"}).get_text()
    field = soup.find("input", attrs={"name": "email"})
    assert field["aria-invalid"] == "true"
    assert field["value"].startswith("jenny@example.com")
    assert "\x00" not in answer.get_data(as_text=True)
    assert console == []


def test_a_code_posted_to_a_sign_in_at_the_email_step_gets_a_409_and_changes_nothing(
    browser: Browser, shop: RelyingParty, store: Store, console: list[str]
) -> None:
    browser.start(shop.authorization_request().url)
    browser.submit("/email", email=JENNY)
    code_form = browser.soup().find("form", action=lambda a: a and a.endswith("/code"))
    csrf_token = code_form.find("input", attrs={"name": "csrf_token"})["value"]
    flow_path = browser.flow_path()
    # "Use another email" (in another tab, say): the flow is back at the email step.
    browser.submit("/restart")
    before = store.flows.load(flow_path.rsplit("/", 1)[1])
    assert before is not None and before.step == "email"

    answer = browser.client.post(
        code_form["action"],
        data={"csrf_token": csrf_token, "code": announced_code(console)},
        base_url=ISSUER,
    )

    assert answer.status_code == 409
    assert answer.mimetype == "text/html"
    text = answer.get_data(as_text=True)
    assert "nothing was changed" in text
    assert answer.headers["Request-Id"] in text
    link = BeautifulSoup(text, "html.parser").find("a", string="Continue signing in")
    assert link["href"] == flow_path
    assert store.flows.load(before.id) == before
    # The way on works: the flow's email page.
    assert browser.get(link["href"]).status_code == 200
    assert browser.soup().find("input", attrs={"name": "email"}) is not None
