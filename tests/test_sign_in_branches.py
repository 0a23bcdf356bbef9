"""Every branch of the hosted sign-in, through the real app: each ends in a clear page.

These run on the embedded Redis only; the storage behind them is covered on both kinds
in test_store.py and test_interaction.py.
"""

from __future__ import annotations

import base64

import fakeredis
import pytest
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.link import (
    CheckAhead,
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)
from oidc_link.services import Services, build_services
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    SHOP_CALLBACK,
    SHOP_SECRET,
    provider_config,
)
from tests.fake_link_server import FakeLinkServer
from tests.relying_party import Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

TEST_KEK = base64.urlsafe_b64encode(b"k" * 32).decode()


def app_with(
    clock: FixedClock, console: list[str], limits: dict[str, int] | None = None
) -> tuple[Flask, Settings]:
    config = provider_config()
    if limits:
        config["limits"] = limits
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings,
        clock=clock,
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        announce=console.append,
    )
    return create_app(settings, services), settings


@pytest.fixture
def app(live_clock: FixedClock, console: list[str]) -> Flask:
    return app_with(live_clock, console)[0]


def begin(app: Flask, email: str = JENNY) -> tuple[Browser, RelyingParty, str]:
    """Open the shop's sign-in and submit ``email``; returns the browser, the RP and its state."""
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    request = shop.authorization_request()
    browser = Browser(app, ISSUER)
    browser.start(request.url)
    browser.submit("/email", email=email)
    return browser, shop, request.state


def alert_text(browser: Browser) -> str:
    return browser.soup().find(attrs={"role": "alert"}).get_text(" ", strip=True)


def test_a_wrong_code_says_how_many_tries_are_left(app: Flask) -> None:
    browser, _, _ = begin(app)

    answer = browser.submit("/code", code="111111")

    assert answer.status_code == 400
    assert "4 more time" in alert_text(browser)


def test_five_wrong_codes_end_the_flow_with_the_way_back_to_the_site(app: Flask) -> None:
    browser, _, state = begin(app)
    for _ in range(5):
        browser.submit("/code", code="111111")

    assert "has ended" in browser.soup().find("h1").get_text()
    assert browser.soup().find("input", attrs={"name": "code"}) is None
    answer = browser.submit("/cancel")

    assert answer.status_code == 302
    assert query_of(answer.headers["Location"])["error"] == "access_denied"
    assert query_of(answer.headers["Location"])["state"] == state


def test_a_new_code_waits_for_the_cooldown_then_works(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    browser, _, _ = begin(app)

    too_soon = browser.submit("/resend")
    assert too_soon.status_code == 429
    assert "30 s" in alert_text(browser)
    assert len(console) == 1

    live_clock.advance(30)
    browser.submit("/resend")
    assert len(console) == 2
    assert browser.submit("/code", code=announced_code(console)).status_code == 302


def test_at_most_three_new_codes_per_flow(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    browser, _, _ = begin(app)
    for _ in range(3):
        live_clock.advance(30)
        browser.submit("/resend")
    live_clock.advance(30)

    answer = browser.submit("/resend")

    assert answer.status_code == 429
    assert "No more codes" in alert_text(browser)
    assert len(console) == 4


def test_submitting_the_email_twice_sends_one_sms(app: Flask, console: list[str]) -> None:
    browser, _, _ = begin(app)
    browser.get(browser.page.request.path)  # the back button shows the code step again

    browser.client.post(
        browser.page.request.path + "/email",
        data={"email": JENNY, "csrf_token": browser.soup().find("input")["value"]},
        base_url=ISSUER,
    )

    assert len(console) == 1


def test_submitting_the_code_twice_lands_both_times_on_the_same_redirect(
    app: Flask, console: list[str]
) -> None:
    browser, _, _ = begin(app)
    form = {
        "code": announced_code(console),
        "csrf_token": browser.soup().find("input", attrs={"name": "csrf_token"})["value"],
    }
    action = browser.page.request.path + "/code"

    first = browser.client.post(action, data=form, base_url=ISSUER)
    second = browser.client.post(action, data=form, base_url=ISSUER)

    assert first.status_code == 302
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]


def test_a_double_submit_much_later_is_not_sent_back_with_the_code(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    browser, _, _ = begin(app)
    form = {
        "code": announced_code(console),
        "csrf_token": browser.soup().find("input", attrs={"name": "csrf_token"})["value"],
    }
    action = browser.page.request.path + "/code"
    browser.client.post(action, data=form, base_url=ISSUER)
    live_clock.advance(11)

    late = browser.client.post(action, data=form, base_url=ISSUER)

    assert late.status_code == 200
    assert "done here" in late.get_data(as_text=True)


def test_the_back_button_after_signing_in_shows_a_calm_page_with_the_way_back(
    app: Flask, console: list[str]
) -> None:
    browser, _, _ = begin(app)
    flow_page = browser.page.request.path
    browser.submit("/code", code=announced_code(console))

    answer = browser.get(flow_page)

    assert answer.status_code == 200
    assert "done here" in answer.get_data(as_text=True)
    assert browser.soup().find("a", string="Back to Example Shop")["href"] == (
        "https://shop.example.test/"
    )


def test_lookups_are_limited_per_network_address(
    live_clock: FixedClock, console: list[str]
) -> None:
    app, _ = app_with(live_clock, console, {"lookups_per_ip": 2})
    browser, _, _ = begin(app, "nobody@example.com")
    browser.submit("/restart")
    browser.submit("/email", email="nobody2@example.com")
    browser.submit("/restart")

    answer = browser.submit("/email", email="nobody3@example.com")

    assert answer.status_code == 429
    assert "Too many tries" in alert_text(browser)


def test_codes_are_limited_per_email_across_flows(
    live_clock: FixedClock, console: list[str]
) -> None:
    app, _ = app_with(live_clock, console, {"sms_per_email": 2})
    begin(app)
    begin(app)

    browser, _, _ = begin(app)

    assert browser.page.status_code == 429
    assert "Too many codes" in alert_text(browser)
    assert len(console) == 2


def test_the_daily_sms_budget_of_a_client_is_enforced(
    live_clock: FixedClock, console: list[str]
) -> None:
    app, _ = app_with(live_clock, console, {"client_daily_sms": 1})
    begin(app)

    browser, _, _ = begin(app, "sam@example.com")

    assert browser.page.status_code == 429
    live_clock.advance(86_400)
    assert begin(app, "sam@example.com")[0].page.status_code == 200


class UnavailableLink:
    """A Link network that is down: every call fails the way the live client reports it."""

    def __init__(self, kind: LinkErrorKind = LinkErrorKind.UNAVAILABLE) -> None:
        self.kind = kind

    def lookup(self, email: str) -> LookupResult:
        raise LinkError(self.kind)

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        raise LinkError(self.kind)

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        return None

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        raise LinkError(self.kind)


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [(LinkErrorKind.UNAVAILABLE, 503, "not answering"), (LinkErrorKind.RATE_LIMITED, 429, "busy")],
)
def test_when_link_is_down_the_user_can_try_again_and_nothing_is_half_done(
    settings: Settings, live_clock: FixedClock, kind: LinkErrorKind, status: int, words: str
) -> None:
    healthy = build_services(
        settings, clock=live_clock, redis_client=fakeredis.FakeRedis(decode_responses=True)
    )
    broken = Services(
        settings=settings,
        clock=live_clock,
        store=healthy.store,
        keys=healthy.keys,
        link=UnavailableLink(kind),
    )
    app = create_app(settings, broken)

    browser, _, _ = begin(app)

    assert browser.page.status_code == status
    assert words in alert_text(browser)
    email = browser.soup().find("input", attrs={"name": "email"})
    assert email["value"] == JENNY
    flow_page = browser.page.request.path.removesuffix("/email")
    assert browser.get(flow_page).status_code == 200
    assert browser.soup().find("input", attrs={"name": "email"}) is not None


class ForgetfulLink:
    """The sandbox, but Link forgets the session before a new code is asked for."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.sent = 0

    def lookup(self, email: str) -> LookupResult:
        return self.inner.lookup(email)

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        self.sent += 1
        if self.sent > 1:
            raise LinkError(LinkErrorKind.CODE_EXPIRED, "session expired")
        return self.inner.start_verification(email, client_secret)

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        return self.inner.check_ahead(session_hint)

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        return self.inner.authenticate(email, client_secret, code, ahead)


def test_a_new_code_for_an_expired_link_session_goes_back_to_the_email_step(
    settings: Settings, live_clock: FixedClock, console: list[str]
) -> None:
    base = build_services(
        settings,
        clock=live_clock,
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        announce=console.append,
    )
    services = Services(settings, live_clock, base.store, base.keys, ForgetfulLink(base.link))
    browser, _, _ = begin(create_app(settings, services))
    live_clock.advance(30)

    browser.submit("/resend")

    assert "expired" in alert_text(browser)
    assert browser.soup().find("input", attrs={"name": "email"})["value"] == JENNY


@pytest.mark.parametrize("dialect", ["loginwithlink", "stripe"])
def test_a_user_signs_in_through_the_live_link_client_end_to_end(
    fake_link: FakeLinkServer, live_clock: FixedClock, dialect: str
) -> None:
    """The live client wired by the real settings, talking HTTP to the fake Link network."""
    config = provider_config()
    config["link"] = {
        "mode": "live",
        "live": {
            "base_url": fake_link.url,
            "publishable_key": fake_link.publishable_key,
            "dialect": dialect,
        },
    }
    environ = {"SHOP_SECRET": SHOP_SECRET, "OIDC_LINK_KEY_ENCRYPTION_KEY": TEST_KEK}
    settings = settings_from_mapping(config, environ, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=fakeredis.FakeRedis(decode_responses=True)
    )
    app = create_app(settings, services)
    user = fake_link.users[0]

    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    request = shop.authorization_request()
    browser = Browser(app, ISSUER)
    browser.start(request.url)
    assert "Sandbox" not in browser.soup().get_text()
    browser.submit("/email", email=user.email.upper())
    callback = browser.submit("/code", code=fake_link.last_code(user.email))
    claims = shop.validate_id_token(
        shop.exchange(callback.headers["Location"], request), request.nonce
    )

    assert claims["email"] == user.email.lower()
    assert claims.get("name") == (user.name if dialect == "loginwithlink" else None)


def test_behind_a_proxy_the_lookup_limit_counts_each_client_address(
    live_clock: FixedClock, console: list[str]
) -> None:
    config = provider_config() | {"proxy_hops": 1, "limits": {"lookups_per_ip": 1}}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=fakeredis.FakeRedis(decode_responses=True)
    )
    app = create_app(settings, services)

    def lookup_from(address: str) -> int:
        browser = Browser(app, ISSUER)
        browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
        browser.start(shop.authorization_request().url)
        return browser.submit("/email", email="nobody@example.com").status_code

    assert lookup_from("198.51.100.7") == 200
    assert lookup_from("198.51.100.8") == 200  # the proxy's own address is shared, not counted
    assert lookup_from("198.51.100.7") == 429
