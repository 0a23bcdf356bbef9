"""Cookie names (web/browser.py): with an https issuer the ``Path=/`` cookies are
``__Host-...``, so a sibling subdomain cannot plant them; an SSO session from before the
rename keeps working and moves to the new name, and a plain-named cookie for a newer session
(which can only be a plant) is ignored. A plain-http issuer on loopback keeps plain names.
"""

from __future__ import annotations

import json
from dataclasses import replace

import redis
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Lifetimes, settings_from_mapping
from oidc_link.models import Identity, SsoSession
from oidc_link.services import build_services
from oidc_link.sessions import HOST_COOKIE_MARK, Sessions
from oidc_link.store import Store
from tests.conftest import ISSUER, JENNY, SHOP_CALLBACK, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in

HOST = "login.example.test"
LOOPBACK_ISSUER = "http://127.0.0.1:8000"


def set_cookies(answer: TestResponse) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    cookies: dict[str, str] = {}
    for header in answer.headers.getlist("Set-Cookie"):
        cookies[header.partition("=")[0]] = header
    return cookies


def session_from_before_the_rename(redis_client: redis.Redis, clock: FixedClock) -> str:
    """An SSO session as the previous version stored it (its cookie value unmarked); its
    secret."""
    store = Store(redis_client, clock)
    secret, session = Sessions(store, clock, Lifetimes()).begin(
        Identity(JENNY, "Jenny Rosen", clock.now())
    )
    unmarked = secret.removeprefix(HOST_COOKIE_MARK)
    store.sessions.save(unmarked, session)
    return unmarked


def test_an_https_issuer_names_its_path_root_cookies_with_the_host_prefix(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request = shop.authorization_request()
    started = set_cookies(browser.start(request.url))
    browser.submit("/email", email=JENNY)
    signed_in = set_cookies(browser.submit("/code", code=console[-1].rsplit(" ", 1)[-1]))

    for cookie in (started["__Host-oidc_link_browser"], signed_in["__Host-oidc_link_session"]):
        # What the prefix demands, or a browser drops the cookie (RFC 6265bis §4.1.3.2).
        assert "; Secure" in cookie
        assert "; Path=/;" in cookie + ";"
        assert "Domain=" not in cookie
    assert not {"oidc_link_browser", "oidc_link_session"} & (started.keys() | signed_in.keys())


def test_a_plain_http_issuer_on_loopback_keeps_the_plain_names(
    embedded_redis: redis.Redis, live_clock: FixedClock, console: list[str]
) -> None:
    config = {**provider_config(), "issuer": LOOPBACK_ISSUER}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    app = create_app(
        settings,
        build_services(
            settings, clock=live_clock, redis_client=embedded_redis, announce=console.append
        ),
    )
    shop = RelyingParty(app, LOOPBACK_ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    browser = Browser(app, LOOPBACK_ISSUER)

    cookies = set_cookies(browser.start(shop.authorization_request().url))

    assert "Secure" not in cookies["oidc_link_browser"]
    assert "__Host-oidc_link_browser" not in cookies


def test_a_session_from_before_the_rename_signs_in_without_an_sms_and_moves_to_the_new_name(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    redis_client: redis.Redis,
    live_clock: FixedClock,
) -> None:
    secret = session_from_before_the_rename(redis_client, live_clock)
    browser.client.set_cookie("oidc_link_session", secret, domain=HOST, secure=True)

    request = shop.authorization_request()
    answer = browser.get(request.url)

    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert shop.validate_id_token(shop.exchange(answer.headers["Location"], request), request.nonce)
    assert console == []  # no SMS
    cookies = set_cookies(answer)
    moved = cookies["__Host-oidc_link_session"]
    assert moved.startswith(f"__Host-oidc_link_session={secret};")
    assert "Max-Age=" in moved and "; Secure" in moved
    assert "Max-Age=0" in cookies["oidc_link_session"]
    assert browser.client.get_cookie("oidc_link_session", HOST) is None
    # From now on the new name carries it, and nothing moves again.
    again = browser.get(shop.authorization_request().url)
    assert again.status_code == 302
    assert not again.headers.getlist("Set-Cookie")


def test_a_plain_named_cookie_for_a_session_started_since_the_rename_is_ignored_and_deleted(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    """Someone else's session, planted under the old name from a sibling subdomain, does not
    sign this browser in as them."""
    sign_in(browser, shop, console)
    planted = browser.client.get_cookie("__Host-oidc_link_session", HOST)
    assert planted is not None
    victim = Browser(app, ISSUER)
    victim.client.set_cookie("oidc_link_session", planted.value, domain=HOST, secure=True)

    answer = victim.get(shop.authorization_request().url)

    assert answer.status_code == 200
    assert 'name="email"' in answer.get_data(as_text=True)
    cookies = set_cookies(answer)
    assert "Max-Age=0" in cookies["oidc_link_session"]
    assert "__Host-oidc_link_session" not in cookies


PREVIOUS_VERSION_SESSION = (
    '{"absolute_expiry":2,"created_at":1,"device":null,"idle_expiry":2,'
    '"identity":{"amr":["otp","sms"],"auth_time":1,"email":"j@example.com","name":null},'
    '"sid":"sid_x"}'
)


def test_a_session_this_version_stores_has_only_the_fields_the_previous_version_reads() -> None:
    """A rolling upgrade: instances of both versions share Redis, so a session started on a
    new instance must still load on an old one (which refuses unknown fields)."""
    session = SsoSession.from_record(PREVIOUS_VERSION_SESSION)

    assert json.loads(session.to_record()) == json.loads(PREVIOUS_VERSION_SESSION)


def test_a_session_a_later_version_stored_with_fields_unknown_here_still_loads() -> None:
    """A rollback: fields a newer version added are dropped, not an error."""
    newer = json.loads(PREVIOUS_VERSION_SESSION)
    newer["from_a_later_version"] = True
    newer["identity"]["also_later"] = 1

    assert SsoSession.from_record(json.dumps(newer)) == SsoSession.from_record(
        PREVIOUS_VERSION_SESSION
    )


def test_a_session_left_by_a_sector_keeps_that_in_its_record() -> None:
    session = SsoSession.from_record(PREVIOUS_VERSION_SESSION)
    left = replace(session, left_sectors=("shop",))

    assert SsoSession.from_record(left.to_record()).left_sectors == ("shop",)


def test_signing_in_again_with_only_the_old_cookie_leaves_just_the_new_one(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    redis_client: redis.Redis,
    live_clock: FixedClock,
) -> None:
    """A view that sets the session cookie itself (a fresh sign-in) has the last word."""
    secret = session_from_before_the_rename(redis_client, live_clock)
    browser.client.set_cookie("oidc_link_session", secret, domain=HOST, secure=True)

    sign_in(browser, shop, console, prompt="login")

    new = browser.client.get_cookie("__Host-oidc_link_session", HOST)
    assert new is not None and new.value != secret
    assert browser.client.get_cookie("oidc_link_session", HOST) is None
