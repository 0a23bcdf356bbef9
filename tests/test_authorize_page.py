"""/authorize answers a new interactive sign-in with the email page itself (no 303 to
/signin/<id>): one HTTP exchange less per sign-in. The page, its cookies and headers are
those of the flow's own page; Reload and Back at the /authorize address show the same flow.

The tests on the shared fixtures run twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from flask import Flask
from prometheus_client import CollectorRegistry
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from tests.conftest import ISSUER, JENNY
from tests.relying_party import Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code
from tests.test_metrics import app_counting_into, value

HOST = urlsplit(ISSUER).hostname or ""


def set_cookies(answer: TestResponse) -> dict[str, str]:
    """The Set-Cookie headers of an answer, by cookie name."""
    return {c.split("=", 1)[0]: c for c in answer.headers.getlist("Set-Cookie")}


def is_email_page(answer: TestResponse) -> bool:
    page = answer.get_data(as_text=True)
    return answer.status_code == 200 and 'name="email"' in page and "Location" not in answer.headers


def test_authorize_answers_a_new_sign_in_with_the_email_page_and_the_flows_cookies(
    browser: Browser, shop: RelyingParty
) -> None:
    answer = browser.get(shop.authorization_request(login_hint=JENNY).url)

    assert is_email_page(answer)
    assert answer.mimetype == "text/html"
    soup = browser.soup()
    assert soup.find("input", attrs={"name": "email"})["value"] == JENNY
    flow = browser.flow_path()
    assert flow.startswith("/signin/flow_")
    # Absolute paths, so they work from the /authorize address the browser shows.
    actions = [form["action"] for form in soup.find_all("form")]
    assert actions == [flow + "/email", flow + "/cancel"]
    assert soup.find("link", rel="stylesheet")["href"] == "/static/site.css"
    cookies = set_cookies(answer)
    binding = cookies["__Host-oidc_link_browser"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/;"):
        assert attribute in binding + ";"
    remembered = cookies["oidc_link_authorize"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/authorize"):
        assert attribute in remembered
    # Lasts the browser session, like the binding cookie it is read with.
    assert "Max-Age" not in remembered and "Expires" not in remembered
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Frame-Options"] == "DENY"
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src" not in policy


def test_the_email_posted_from_the_authorize_page_redirects_to_the_code_page_and_signs_in(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request = shop.authorization_request()
    browser.get(request.url)
    flow = browser.flow_path()
    csrf = browser.soup().find("input", attrs={"name": "csrf_token"})["value"]

    posted = browser.client.post(
        flow + "/email", data={"csrf_token": csrf, "email": JENNY}, base_url=ISSUER
    )

    # Post/redirect/get stays: Reload of the code page cannot send a second SMS.
    assert posted.status_code == 303
    assert posted.headers["Location"] == flow
    code_page = browser.get(flow)
    assert "Enter your code" in code_page.get_data(as_text=True)
    callback = browser.submit("/code", code=announced_code(console))
    assert callback.status_code == 302
    assert query_of(callback.headers["Location"])["state"] == request.state
    token = shop.exchange(callback.headers["Location"], request)
    assert shop.validate_id_token(token, request.nonce)["email"] == JENNY
    assert len(console) == 1


def test_the_flows_own_address_still_shows_its_email_page(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.get(shop.authorization_request().url)
    flow = browser.flow_path()

    page = browser.get(flow)

    assert is_email_page(page)
    assert browser.flow_path() == flow


def test_reloading_the_authorize_url_shows_the_same_flow_and_counts_one_sign_in_started(
    live_clock: FixedClock, console: list[str]
) -> None:
    registry = CollectorRegistry()
    app = app_counting_into(registry, live_clock, console)
    shop = RelyingParty(app, ISSUER, "shop", "https://shop.example.test/callback", "unused")
    url = shop.authorization_request().url
    browser = Browser(app, ISSUER)
    browser.get(url)
    flow = browser.flow_path()

    again = browser.get(url)

    assert is_email_page(again)
    assert browser.flow_path() == flow
    assert value(registry, "oidc_link_sign_ins_started_total", client_id="shop") == 1


def test_reloading_the_authorize_url_at_the_code_step_shows_the_code_page_and_sends_no_sms(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request = shop.authorization_request()
    browser.get(request.url)
    browser.submit("/email", email=JENNY)

    again = browser.get(request.url)  # Back, or Reload of that history entry

    assert again.status_code == 200
    assert "Enter your code" in again.get_data(as_text=True)
    assert len(console) == 1
    callback = browser.submit("/code", code=announced_code(console))
    assert query_of(callback.headers["Location"])["state"] == request.state


def test_the_same_authorize_url_in_another_browser_starts_its_own_flow(
    app: Flask, shop: RelyingParty
) -> None:
    url = shop.authorization_request().url
    first, second = Browser(app, ISSUER), Browser(app, ISSUER)
    first.get(url)

    answer = second.get(url)

    assert is_email_page(answer)
    assert second.flow_path() != first.flow_path()
    assert first.get(second.flow_path()).status_code == 403  # each flow is its browser's


def test_a_new_authorization_request_in_the_same_browser_starts_a_new_flow(
    browser: Browser, shop: RelyingParty
) -> None:
    one, two = shop.authorization_request().url, shop.authorization_request().url
    browser.get(one)
    first = browser.flow_path()

    browser.get(two)
    second = browser.flow_path()
    browser.get(two)

    assert second != first
    assert browser.flow_path() == second
    # Only the latest request is remembered: the older one's URL starts over, and works.
    assert is_email_page(browser.get(one))
    assert browser.flow_path() not in (first, second)


def test_reloading_after_the_flow_expired_starts_a_fresh_one_that_works(
    browser: Browser, shop: RelyingParty, live_clock: FixedClock, console: list[str]
) -> None:
    url = shop.authorization_request().url
    browser.get(url)
    expired = browser.flow_path()
    live_clock.advance(601)

    again = browser.get(url)

    assert is_email_page(again)
    assert browser.flow_path() != expired
    assert "Enter your code" in browser.submit("/email", email=JENNY).get_data(as_text=True)
    assert len(console) == 1


def test_the_authorize_url_again_after_signing_in_is_answered_by_the_session(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    # Back twice from the site, or a site whose requests are all alike (a fixed state): the
    # finished flow is not shown again; the request is a new one, and the SSO session
    # answers it as at any provider, with a new code and no SMS.
    request = shop.authorization_request()
    browser.get(request.url)
    browser.submit("/email", email=JENNY)
    first = browser.submit("/code", code=announced_code(console))

    again = browser.get(request.url)

    assert again.status_code == 302
    answer = query_of(again.headers["Location"])
    assert answer["state"] == request.state
    assert answer["code"] != query_of(first.headers["Location"])["code"]
    assert len(console) == 1


def test_the_authorize_url_again_after_cancelling_starts_a_new_sign_in(
    browser: Browser, shop: RelyingParty
) -> None:
    url = shop.authorization_request().url
    browser.get(url)
    cancelled = browser.flow_path()
    assert "error=access_denied" in browser.submit("/cancel").headers["Location"]

    again = browser.get(url)

    assert is_email_page(again)
    assert browser.flow_path() != cancelled


def test_an_authorize_cookie_naming_another_browsers_flow_shows_nothing_of_it(
    app: Flask, shop: RelyingParty
) -> None:
    url = shop.authorization_request(login_hint=JENNY).url
    victim, intruder = Browser(app, ISSUER), Browser(app, ISSUER)
    victim.get(url)
    victims_flow = victim.flow_path()
    intruder.get(url)
    remembered = victim.client.get_cookie("oidc_link_authorize", HOST, "/authorize")
    assert remembered is not None
    intruder.client.set_cookie(
        "oidc_link_authorize", remembered.value, domain=HOST, path="/authorize"
    )

    answer = intruder.get(url)

    assert is_email_page(answer)
    assert intruder.flow_path() != victims_flow
    assert victims_flow.removeprefix("/signin/") not in answer.get_data(as_text=True)
    assert is_email_page(victim.get(url))
    assert victim.flow_path() == victims_flow


def test_a_repeated_authorization_post_shows_the_same_flow(
    browser: Browser, shop: RelyingParty
) -> None:
    params = query_of(shop.authorization_request().url)
    first = browser.client.post("/authorize", data=params, base_url=ISSUER)
    browser.page = first
    flow = browser.flow_path()

    again = browser.client.post("/authorize", data=params, base_url=ISSUER)
    browser.page = again

    assert is_email_page(first) and is_email_page(again)
    assert browser.flow_path() == flow


def test_the_authorize_cookie_names_the_flow_under_the_fingerprint_earlier_versions_wrote(
    browser: Browser, shop: RelyingParty
) -> None:
    """A reload during a rolling upgrade finds the flow an older version started: the
    fingerprint is still the digest of ``json.dumps([method, query, form])``."""
    url = shop.authorization_request(login_hint='"quoted" café').url
    cookie = set_cookies(browser.get(url))["oidc_link_authorize"]
    params = query_of(url)
    posted = set_cookies(browser.client.post("/authorize", data=params, base_url=ISSUER))

    query = urlsplit(url).query
    value = cookie.partition("=")[2].partition(";")[0]
    assert value == browser.flow_path().removeprefix("/signin/") + "." + earlier_fingerprint(
        "GET", query, []
    )
    form = [[name, value] for name, value in params.items()]  # in the order posted
    assert posted["oidc_link_authorize"].partition(";")[0].endswith(
        "." + earlier_fingerprint("POST", "", form)
    )


def earlier_fingerprint(method: str, query: str, form: list[list[str]]) -> str:
    """The authorize cookie's fingerprint as versions up to s25 computed it."""
    return hashlib.sha256(json.dumps([method, query, form]).encode()).hexdigest()[:32]
