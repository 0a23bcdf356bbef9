"""Consent for third-party clients (OIDC Core §3.1.2.4): asked once after sign-in, then
remembered per user and client until it lapses or is revoked; first-party clients never ask.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.models import Identity
from oidc_link.oauth import Provider
from oidc_link.oauth.consent import Consents
from oidc_link.platform.accounts import Accounts
from oidc_link.platform.events import Events
from oidc_link.store import Store, keyspace
from oidc_link.web.context import EXTENSION_NAME
from tests.conftest import ISSUER, JENNY, ON_REDIS_CLUSTER, SHOP_SECRET, provider_config
from tests.relying_party import AuthorizationRequest, Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

PARTNER_SECRET = "partner-secret-0123456789abcdef"
PARTNER_CALLBACK = "https://partner.example.test/callback"


@pytest.fixture
def settings() -> Settings:
    """The usual clients, and a third-party one: Partner App."""
    config = provider_config()
    config["clients"].append(  # type: ignore[union-attr]
        {
            "client_id": "partner",
            "client_secret": PARTNER_SECRET,
            "redirect_uris": [PARTNER_CALLBACK],
            "name": "Partner App",
            "third_party": True,
        }
    )
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def partner_app(app: Flask, scope: str = "openid email") -> RelyingParty:
    return RelyingParty(app, ISSUER, "partner", PARTNER_CALLBACK, PARTNER_SECRET, scope=scope)


def provider_of(app: Flask) -> Provider:
    return app.extensions[EXTENSION_NAME].services.provider


def consents_for(store: Store, clock: FixedClock, settings: Settings) -> Consents:
    return Consents(
        store,
        clock,
        settings.lifetimes,
        Accounts(store, clock, settings.subject_salt, Events(store, clock)),
        Events(store, clock, settings.clients),
    )


def follow(browser: Browser, answer: TestResponse) -> TestResponse:
    """Follow a redirect to one of our own pages (the RP's callback is not followed)."""
    location = answer.headers.get("Location", "")
    if answer.status_code in (302, 303) and location.startswith("/"):
        return browser.get(location)
    return answer


def sign_in_to_consent(
    browser: Browser, rp: RelyingParty, console: list[str], **extra: str
) -> tuple[AuthorizationRequest, TestResponse]:
    """Sign in by SMS at ``rp``; returns the request and the page that follows the code."""
    request = rp.authorization_request(**extra)
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    return request, follow(browser, browser.submit("/code", code=announced_code(console)))


def authorize(
    browser: Browser, rp: RelyingParty, **extra: str
) -> tuple[AuthorizationRequest, TestResponse]:
    """An authorization request in a browser that may have a session; follows to our page."""
    request = rp.authorization_request(**extra)
    return request, follow(browser, browser.get(request.url))


def is_consent_page(answer: TestResponse, browser: Browser) -> bool:
    allow = browser.soup().find("form", action=_ends("/allow"))
    return answer.status_code == 200 and allow is not None


def asked_for(browser: Browser) -> list[str]:
    return [item.get_text(strip=True) for item in browser.soup().select("ul.permissions li")]


def _ends(suffix: str):
    return lambda action: bool(action) and action.endswith(suffix)


def test_a_third_party_client_shows_the_consent_page_after_the_sms_sign_in(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    _, page = sign_in_to_consent(browser, partner_app(app, "openid email profile"), console)

    assert is_consent_page(page, browser)
    soup = browser.soup()
    assert soup.h1.get_text(strip=True) == "Allow Partner App to use your Link sign-in?"
    assert JENNY in soup.get_text()
    assert asked_for(browser) == [
        "Know that it's you when you sign in",
        "See your email address",
        "See your name",
    ]
    buttons = [button.get_text(strip=True) for button in soup.find_all("button")]
    assert buttons == ["Allow", "Deny"]
    for form in soup.find_all("form"):
        assert form["method"] == "post"
        assert form.find("input", attrs={"name": "csrf_token"})["value"]
    assert soup.find("script") is None
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_allowing_sends_a_code_that_redeems_for_tokens_with_the_requested_scopes(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    partner = partner_app(app, "openid email offline_access")
    request, _ = sign_in_to_consent(browser, partner, console)
    assert "Stay signed in, even when you're not using it (offline access)" in asked_for(browser)

    answer = browser.submit("/allow")

    assert answer.status_code == 302
    callback = answer.headers["Location"]
    assert callback.startswith(PARTNER_CALLBACK + "?")
    assert query_of(callback)["state"] == request.state
    assert query_of(callback)["iss"] == ISSUER
    token = partner.exchange(callback, request)
    assert token["scope"] == "openid email offline_access"
    assert "refresh_token" in token
    claims = partner.validate_id_token(token, request.nonce)
    assert claims["email"] == JENNY
    assert "name" not in claims
    assert claims["sid"]  # the session this sign-in started


def test_denying_tells_the_relying_party_access_denied_with_its_state(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    request, _ = sign_in_to_consent(browser, partner_app(app), console)

    answer = browser.submit("/cancel")

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(PARTNER_CALLBACK + "?")
    answered = query_of(answer.headers["Location"])
    assert answered["error"] == "access_denied"
    assert answered["state"] == request.state
    assert "code" not in answered
    # Nothing was remembered: the next request asks again.
    assert is_consent_page(authorize(browser, partner_app(app))[1], browser)


def test_denying_with_form_post_posts_access_denied_to_the_relying_party(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    request, _ = sign_in_to_consent(browser, partner_app(app), console, response_mode="form_post")

    answer = browser.submit("/cancel")

    assert answer.status_code == 200
    form = browser.soup().find("form", id="response")
    assert form["action"] == PARTNER_CALLBACK
    fields = {field["name"]: field["value"] for field in form.find_all("input")}
    assert fields["error"] == "access_denied"
    assert fields["state"] == request.state


def test_allowing_with_form_post_posts_the_code(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    partner = partner_app(app)
    request, _ = sign_in_to_consent(browser, partner, console, response_mode="form_post")

    answer = browser.submit("/allow")

    assert answer.status_code == 200
    form = browser.soup().find("form", id="response")
    fields = {field["name"]: field["value"] for field in form.find_all("input")}
    token = partner.exchange(PARTNER_CALLBACK + "?" + urlencode(fields), request)
    assert partner.validate_id_token(token, request.nonce)["email"] == JENNY


def test_a_remembered_consent_lets_the_next_authorization_straight_through(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    partner = partner_app(app)
    sign_in_to_consent(browser, partner, console)
    browser.submit("/allow")

    request, answer = authorize(browser, partner)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(PARTNER_CALLBACK + "?")
    token = partner.exchange(answer.headers["Location"], request)
    assert partner.validate_id_token(token, request.nonce)["email"] == JENNY
    assert len(console) == 1
    # Fewer scopes than allowed need no new consent either.
    _, fewer = authorize(browser, partner_app(app, "openid"))
    assert fewer.headers["Location"].startswith(PARTNER_CALLBACK + "?code=")


def test_asking_for_more_scopes_than_remembered_shows_the_page_with_what_is_new(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    sign_in_to_consent(browser, partner_app(app, "openid email"), console)
    browser.submit("/allow")
    more = partner_app(app, "openid email profile")

    request, page = authorize(browser, more)

    assert is_consent_page(page, browser)
    assert asked_for(browser) == ["See your name"]
    assert "You already allowed it to: know that it's you" in browser.soup().get_text()
    answer = browser.submit("/allow")
    token = more.exchange(answer.headers["Location"], request)
    assert more.validate_id_token(token, request.nonce)["name"] == "Jenny Rosen"
    assert authorize(browser, more)[1].status_code == 302  # all of it remembered now


def test_prompt_consent_shows_the_page_even_when_remembered(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    partner = partner_app(app)
    sign_in_to_consent(browser, partner, console)
    browser.submit("/allow")

    request, page = authorize(browser, partner, prompt="consent")

    assert is_consent_page(page, browser)
    assert asked_for(browser) == ["Know that it's you when you sign in", "See your email address"]
    answer = browser.submit("/allow")
    assert query_of(answer.headers["Location"])["state"] == request.state
    assert len(console) == 1  # the session answered: no second SMS


def test_the_sso_session_leads_to_the_consent_page_without_an_sms_and_keeps_its_sid(
    app: Flask, browser: Browser, console: list[str], shop: RelyingParty
) -> None:
    first = shop.authorization_request()
    browser.start(first.url)
    browser.submit("/email", email=JENNY)
    shop_callback = browser.submit("/code", code=announced_code(console)).headers["Location"]
    shop_claims = shop.validate_id_token(shop.exchange(shop_callback, first), first.nonce)
    partner = partner_app(app)

    request, page = authorize(browser, partner)

    assert is_consent_page(page, browser)
    assert len(console) == 1
    answer = browser.submit("/allow")
    claims = partner.validate_id_token(
        partner.exchange(answer.headers["Location"], request), request.nonce
    )
    assert claims["auth_time"] == shop_claims["auth_time"]
    assert claims["sid"] == shop_claims["sid"]  # the code carries the session it came from


def test_prompt_none_without_consent_says_consent_required_and_shows_no_page(
    app: Flask, browser: Browser, console: list[str], shop: RelyingParty
) -> None:
    first = shop.authorization_request()
    browser.start(first.url)
    browser.submit("/email", email=JENNY)
    browser.submit("/code", code=announced_code(console))
    partner = partner_app(app)

    request, answer = authorize(browser, partner, prompt="none")

    assert answer.status_code == 302
    answered = query_of(answer.headers["Location"])
    assert answer.headers["Location"].startswith(PARTNER_CALLBACK + "?")
    assert answered["error"] == "consent_required"
    assert answered["state"] == request.state
    assert answered["iss"] == ISSUER

    # Once allowed, prompt=none answers with a code.
    authorize(browser, partner)
    browser.submit("/allow")
    _, silent = authorize(browser, partner, prompt="none")
    assert "code" in query_of(silent.headers["Location"])


def test_prompt_none_without_a_session_is_still_login_required(
    app: Flask, browser: Browser
) -> None:
    request, answer = authorize(browser, partner_app(app), prompt="none")

    assert query_of(answer.headers["Location"])["error"] == "login_required"
    assert query_of(answer.headers["Location"])["state"] == request.state


def test_prompt_consent_together_with_none_is_an_invalid_request(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    partner = partner_app(app)
    sign_in_to_consent(browser, partner, console)
    browser.submit("/allow")

    request, answer = authorize(browser, partner, prompt="none consent")

    answered = query_of(answer.headers["Location"])
    assert answered["error"] == "invalid_request"
    assert answered["state"] == request.state


def test_a_revoked_consent_brings_the_page_back(
    app: Flask, browser: Browser, console: list[str], settings: Settings
) -> None:
    partner = partner_app(app)
    sign_in_to_consent(browser, partner, console)
    browser.submit("/allow")
    provider = provider_of(app)
    user = provider.subject_for(settings.client("partner"), JENNY)

    provider.consents.revoke(user, "partner")

    assert is_consent_page(authorize(browser, partner)[1], browser)


def test_a_consent_lapses_after_its_lifetime(
    app: Flask, browser: Browser, console: list[str], settings: Settings, live_clock: FixedClock
) -> None:
    partner = partner_app(app)
    sign_in_to_consent(browser, partner, console)
    browser.submit("/allow")

    live_clock.advance(settings.lifetimes.consent + 1)

    fresh = Browser(app, ISSUER)  # the session has ended too
    _, page = sign_in_to_consent(fresh, partner, console)
    assert is_consent_page(page, fresh)


def test_a_first_party_client_never_shows_the_consent_page(
    app: Flask, browser: Browser, console: list[str], shop: RelyingParty
) -> None:
    request = shop.authorization_request(prompt="consent")
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(shop.redirect_uri + "?code=")
    _, again = authorize(browser, shop, prompt="consent")
    assert again.headers["Location"].startswith(shop.redirect_uri + "?code=")
    _, silent = authorize(browser, shop, prompt="none")
    assert "code" in query_of(silent.headers["Location"])


def test_an_expired_consent_step_shows_the_usual_expired_page(
    app: Flask, browser: Browser, console: list[str], settings: Settings, live_clock: FixedClock
) -> None:
    sign_in_to_consent(browser, partner_app(app), console)
    allow_form = browser.soup().find("form", action=_ends("/allow"))
    fields = {i["name"]: i["value"] for i in allow_form.find_all("input")}

    live_clock.advance(settings.lifetimes.flow + 1)

    answer = browser.client.post(allow_form["action"], data=fields, base_url=ISSUER)
    assert answer.status_code == 410
    assert "This sign-in has expired" in answer.get_data(as_text=True)
    assert "Location" not in answer.headers


def test_allowing_without_the_csrf_token_is_refused(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    sign_in_to_consent(browser, partner_app(app), console)
    action = browser.soup().find("form", action=_ends("/allow"))["action"]

    answer = browser.client.post(action, data={}, base_url=ISSUER)

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    # The real form still works afterwards.
    browser.get(action.removesuffix("/allow"))
    assert browser.submit("/allow").headers["Location"].startswith(PARTNER_CALLBACK + "?code=")


def test_another_browser_cannot_answer_the_consent_page(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    sign_in_to_consent(browser, partner_app(app), console)
    form = browser.soup().find("form", action=_ends("/allow"))
    fields = {i["name"]: i["value"] for i in form.find_all("input")}

    answer = Browser(app, ISSUER).client.post(form["action"], data=fields, base_url=ISSUER)

    assert answer.status_code == 403


def test_allowing_twice_lands_where_the_first_submit_went(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    sign_in_to_consent(browser, partner_app(app), console)
    form = browser.soup().find("form", action=_ends("/allow"))
    fields = {i["name"]: i["value"] for i in form.find_all("input")}

    first = browser.client.post(form["action"], data=fields, base_url=ISSUER)
    second = browser.client.post(form["action"], data=fields, base_url=ISSUER)

    assert first.status_code == 302
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]


def test_the_code_page_submitted_twice_lands_on_the_same_consent_page(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    request = partner_app(app).authorization_request()
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    form = browser.soup().find("form", action=_ends("/code"))
    fields = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
    fields["code"] = announced_code(console)

    first = browser.client.post(form["action"], data=fields, base_url=ISSUER)
    second = browser.client.post(form["action"], data=fields, base_url=ISSUER)

    assert first.headers["Location"].startswith("/signin/")
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]


# The parts on their own.


def test_consents_add_up_last_their_lifetime_and_can_be_revoked(
    store: Store, clock: FixedClock, settings: Settings
) -> None:
    consents = consents_for(store, clock, settings)

    consents.remember("usr_a", "partner", ["openid", "email"])
    clock.advance(100)
    consents.remember("usr_a", "partner", ["profile"])

    assert consents.granted("usr_a", "partner") == {"openid", "email", "profile"}
    assert consents.granted("usr_a", "other") == frozenset()
    assert consents.granted("usr_b", "partner") == frozenset()
    clock.advance(settings.lifetimes.consent - 50)
    assert consents.granted("usr_a", "partner") == {"profile"}
    consents.revoke("usr_a", "partner")
    assert consents.granted("usr_a", "partner") == frozenset()


def test_a_remembered_consent_has_a_ttl_in_redis(
    store: Store, clock: FixedClock, settings: Settings, redis_client
) -> None:
    consents_for(store, clock, settings).remember("usr_a", "partner", ["openid"])

    (key,) = redis_client.scan_iter(keyspace.pattern("consent"))
    assert 0 < redis_client.ttl(key) <= settings.lifetimes.consent


def test_prompt_consent_asks_for_everything_and_otherwise_only_what_is_new(
    store: Store, clock: FixedClock, settings: Settings
) -> None:
    consents = consents_for(store, clock, settings)
    consents.remember("usr_a", "partner", ["openid"])

    assert consents.ask("usr_a", "partner", ["openid"], again=False).needed is False
    asked = consents.ask("usr_a", "partner", ["openid", "email"], again=False)
    assert (asked.needed, asked.new, asked.already_allowed) == (True, ("email",), ("openid",))
    again = consents.ask("usr_a", "partner", ["openid"], again=True)
    assert (again.needed, again.new) == (True, ("openid",))


def test_the_consent_decision_asks_third_party_clients_only_and_again_on_prompt_consent(
    store: Store, clock: FixedClock, settings: Settings
) -> None:
    consents = consents_for(store, clock, settings)
    jenny = Identity(email=JENNY, name="Jenny Rosen", auth_time=0)
    partner, shop = settings.client("partner"), settings.client("shop")
    asked = {"scope": "openid email"}

    first = consents.request(partner, asked, jenny)
    consents.allow(partner, asked, jenny)
    later = consents.request(partner, asked, jenny)
    forced = consents.request(partner, {**asked, "prompt": "login consent"}, jenny)
    consents.allow(shop, asked, jenny)

    assert (first.needed, first.new) == (True, ("openid", "email"))
    assert later.needed is False
    assert (forced.needed, forced.new) == (True, ("openid", "email"))
    assert consents.request(shop, asked, jenny).needed is False
    assert consents.request(None, asked, jenny).needed is False
    accounts = Accounts(store, clock, settings.subject_salt, Events(store, clock))
    shop_user = accounts.subject_of(shop.subject_sector, JENNY)
    assert consents.granted(shop_user, "shop") == frozenset()


def test_claims_asked_for_one_by_one_need_consent_like_their_scopes(app: Flask) -> None:
    provider = provider_of(app)
    jenny = Identity(email=JENNY, name="Jenny Rosen", auth_time=0)
    claims = json.dumps({"userinfo": {"name": None}, "id_token": {"email": {"essential": True}}})

    asked = provider.consent_request("partner", {"scope": "openid", "claims": claims}, jenny)

    assert asked.asked == ("openid", "profile", "email")
    assert provider.consent_request("shop", {"scope": "openid"}, jenny).needed is False
    garbled = provider.consent_request("partner", {"scope": "openid", "claims": "{"}, jenny)
    assert garbled.asked == ("openid",)


def test_a_claims_request_for_the_email_asks_consent_for_it(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    claims = json.dumps({"id_token": {"email": None}})

    sign_in_to_consent(browser, partner_app(app, "openid"), console, claims=claims)

    assert asked_for(browser) == ["Know that it's you when you sign in", "See your email address"]
