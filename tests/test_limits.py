"""The sign-in's abuse limits at scale, through the hosted pages: none is keyed on a value
that unrelated people share, none lets a stranger keep someone from getting a code for more
than the email's short ceiling window, and the sandbox counts no SMS unless told to.

These run on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry
from werkzeug.test import Client, TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import SMS_COUNTING_LIMITS, Limits, Settings, settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.link.sandbox import redact_phone
from oidc_link.services import build_services
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    SHOP_CALLBACK,
    SHOP_SECRET,
    provider_config,
)
from tests.relying_party import Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

# The defaults, set explicitly: the sandbox counts sent SMS only when [limits] says so.
DEFAULT_SMS_LIMITS = {name: getattr(Limits(), name) for name in SMS_COUNTING_LIMITS}
VICTIM = JENNY
VICTIM_NETWORK = "192.0.2.50"
ATTACKER_NETWORKS = ["198.51.100.1", "198.51.100.2", "2001:db8:bad::1", "203.0.113.99"]


def settings_for(config: dict[str, Any]) -> Settings:
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def app_for(
    settings: Settings,
    redis_client: redis.Redis,
    clock: FixedClock,
    console: list[str],
    registry: CollectorRegistry | None = None,
) -> Flask:
    services = build_services(
        settings,
        clock=clock,
        redis_client=redis_client,
        announce=console.append,
        metrics_registry=registry,
    )
    return create_app(settings, services)


def start_sign_in(app: Flask, email: str, network: str | None = None) -> Browser:
    """A browser on ``network`` (through the one proxy) that opens the shop's sign-in and
    submits ``email``; its page is what came back."""
    browser = Browser(app, ISSUER)
    if network is not None:
        browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = network
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    browser.start(shop.authorization_request().url)
    browser.submit("/email", email=email)
    return browser


def at_code_step(browser: Browser) -> bool:
    assert browser.page is not None
    return browser.page.status_code == 200 and bool(
        browser.soup().find("input", attrs={"name": "code"})
    )


def alert(browser: Browser) -> str:
    return browser.soup().find(attrs={"role": "alert"}).get_text(" ", strip=True)


@pytest.fixture
def hour_clock() -> FixedClock:
    """Now, a minute into a fixed hour window, so that a test advancing a few minutes does
    not cross into the next hour (when hourly allowances start again)."""
    return FixedClock(int(time.time()) // 3600 * 3600 + 60)


# Which limits are on: the sandbox counts no sent SMS unless [limits] says so.


LIVE_LINK = {
    "mode": "live",
    "live": {"base_url": "https://link.example.com", "publishable_key": "pk_test_123"},
}
KEK = base64.urlsafe_b64encode(b"k" * 32).decode()


def limits_of(link: dict[str, Any], limits: dict[str, Any] | None = None) -> Limits:
    config = provider_config() | {"link": link, "keys": {"encryption_key": KEK}}
    if limits is not None:
        config["limits"] = limits
    return settings_from_mapping(config, {"SHOP_SECRET": "s" * 32}, "test").limits


def test_live_mode_counts_sent_sms_by_default() -> None:
    assert limits_of(LIVE_LINK) == Limits()
    assert Limits().sms_per_email == 5
    assert Limits().sms_per_email_ceiling == 10
    assert Limits().sms_per_email_ceiling_window == 300


def test_the_sandbox_counts_sent_sms_only_for_the_limits_its_config_sets() -> None:
    assert limits_of({"mode": "sandbox"}) == Limits(
        sms_per_email=None, sms_per_email_ceiling=None, client_daily_sms=None
    )
    assert limits_of({"mode": "sandbox"}, {"sms_per_email": 3}) == Limits(
        sms_per_email=3, sms_per_email_ceiling=None, client_daily_sms=None
    )
    # A window alone turns nothing on; the limits that count no SMS stay on.
    assert limits_of({"mode": "sandbox"}, {"sms_per_email_window": 60}).sms_per_email is None
    assert limits_of({"mode": "sandbox"}).lookups_per_ip == Limits().lookups_per_ip
    assert limits_of({"mode": "sandbox"}).resends == Limits().resends


def test_the_removed_per_phone_limit_is_refused_naming_what_replaces_it() -> None:
    config = provider_config() | {"limits": {"sms_per_phone": 5, "sms_per_phone_window": 3600}}

    with pytest.raises(ConfigError) as caught:
        settings_for(config)

    problems = {problem.field: [problem.message] for problem in caught.value.problems}
    assert set(problems) == {"limits.sms_per_phone", "limits.sms_per_phone_window"}
    assert "sms_per_email_ceiling" in problems["limits.sms_per_phone"][0]
    assert "redacted phone number" in problems["limits.sms_per_phone"][0]
    assert "removed" in problems["limits.sms_per_phone_window"][0]


# No limit is keyed on a value that unrelated people share.


def test_a_thousand_users_whose_phones_redact_alike_all_get_a_code_from_fifty_networks(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    users = [{"email": f"user{n}@example.com", "phone": f"+1415{n:04d}623"} for n in range(1000)]
    assert len({redact_phone(user["phone"]) for user in users}) == 1
    config = provider_config() | {"proxy_hops": 1, "limits": dict(DEFAULT_SMS_LIMITS)}
    config["link"] = {"mode": "sandbox", "sandbox": {"users": users}}
    console: list[str] = []
    registry = CollectorRegistry()
    app = app_for(settings_for(config), redis_client, live_clock, console, registry)
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    browsers = {n: Browser(app, ISSUER) for n in range(50)}
    for n, browser in browsers.items():
        browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.{n}.7"

    reached = 0
    for n, user in enumerate(users):
        browser = browsers[n % 50]
        browser.start(shop.authorization_request().url)
        browser.submit("/email", email=user["email"])
        reached += at_code_step(browser)

    assert reached == 1000
    assert len(console) == 1000
    limited = [
        sample
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "oidc_link_rate_limited_total"
    ]
    assert limited == []


# A stranger cannot keep someone from getting a code for longer than the ceiling window.


def test_strangers_hammering_an_email_keep_its_owner_out_at_most_for_the_ceiling_window(
    redis_client: redis.Redis, hour_clock: FixedClock
) -> None:
    config = provider_config() | {"proxy_hops": 1, "limits": dict(DEFAULT_SMS_LIMITS)}
    console: list[str] = []
    registry = CollectorRegistry()
    app = app_for(settings_for(config), redis_client, hour_clock, console, registry)
    limits = Limits()

    def attack() -> None:
        for network in ATTACKER_NETWORKS:
            for _ in range(8):
                start_sign_in(app, VICTIM, network)

    attack()
    refused = start_sign_in(app, VICTIM, VICTIM_NETWORK)

    assert refused.page is not None
    assert refused.page.status_code == 429
    # The page says when: the ceiling's window (5 minutes) ends within 4 minutes from here.
    assert "Too many codes were sent to this email. Please try again in 4 minutes." in alert(
        refused
    )
    # Every attacker network got its own allowance, and together they filled the ceiling.
    assert len(console) == limits.sms_per_email_ceiling
    assert (
        registry.get_sample_value(
            "oidc_link_rate_limited_total", {"limit": "sms_per_email_ceiling"}
        )
        or 0
    ) > 0
    assert (
        registry.get_sample_value("oidc_link_rate_limited_total", {"limit": "sms_per_email"}) or 0
    ) > 0

    hour_clock.advance(limits.sms_per_email_ceiling_window)
    attack()  # the same networks again: each is over its own allowance for the hour
    owner = start_sign_in(app, VICTIM, VICTIM_NETWORK)

    assert at_code_step(owner)
    owner.submit("/code", code=announced_code(console))
    assert query_of(owner.page.headers["Location"])["code"]


def test_one_network_gets_a_few_codes_per_email_and_others_are_not_held_back_by_it(
    redis_client: redis.Redis, hour_clock: FixedClock
) -> None:
    config = provider_config() | {"proxy_hops": 1, "limits": dict(DEFAULT_SMS_LIMITS)}
    console: list[str] = []
    app = app_for(settings_for(config), redis_client, hour_clock, console)

    answers = [at_code_step(start_sign_in(app, VICTIM, VICTIM_NETWORK)) for _ in range(6)]

    assert answers == [True] * Limits().sms_per_email + [False]
    assert at_code_step(start_sign_in(app, VICTIM, ATTACKER_NETWORKS[0]))
    assert at_code_step(start_sign_in(app, "sam@example.com", VICTIM_NETWORK))


# The sandbox: no SMS is sent, so none is counted unless the configuration says so.


def test_the_sandbox_counts_no_sms_unless_the_limits_are_configured(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    console: list[str] = []
    app = app_for(settings_for(provider_config()), redis_client, live_clock, console)

    assert all(at_code_step(start_sign_in(app, JENNY)) for _ in range(12))
    assert len(console) == 12


def test_the_sandbox_banner_says_sms_limits_are_off(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    app = app_for(settings_for(provider_config()), redis_client, live_clock, [])
    browser = Browser(app, ISSUER)
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    browser.start(shop.authorization_request().url)

    banner = browser.soup().find(class_="sandbox-banner")

    assert "SMS limits are off unless configured." in banner.get_text(" ", strip=True)
    assert "[limits]" in banner["title"]


@pytest.mark.parametrize(
    ("email", "status", "message"),
    [
        (
            "too-many-lookups@example.com",
            429,
            "Too many tries from your network. Please try again in 5 minutes.",
        ),
        (
            "too-many-sms@example.com",
            429,
            "Too many codes were sent to this email. Please try again in 5 minutes.",
        ),
        ("link-rate-limited@example.com", 429, "Link is busy"),
        ("link-unavailable@example.org", 503, "Link is not answering"),
    ],
)
def test_sandbox_emails_show_each_limit_page_of_the_email_step(
    redis_client: redis.Redis, live_clock: FixedClock, email: str, status: int, message: str
) -> None:
    console: list[str] = []
    app = app_for(settings_for(provider_config()), redis_client, live_clock, console)

    browser = start_sign_in(app, email)

    assert browser.page is not None
    assert browser.page.status_code == status
    assert message in alert(browser)
    assert console == []


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("000001", 400, "not right"),
        ("000002", 400, "expired"),
        ("000003", 400, "Too many wrong codes"),
        ("000004", 429, "Link is busy"),
        ("000005", 503, "Link is not answering"),
    ],
)
def test_sandbox_magic_codes_show_each_page_of_the_code_step(
    redis_client: redis.Redis, live_clock: FixedClock, code: str, status: int, message: str
) -> None:
    app = app_for(settings_for(provider_config()), redis_client, live_clock, [])
    browser = start_sign_in(app, JENNY)

    browser.submit("/code", code=code)

    assert browser.page is not None
    assert message in browser.page.get_data(as_text=True)
    assert browser.page.status_code == status


def test_the_resend_limit_pages_stay_on_in_the_sandbox(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    app = app_for(settings_for(provider_config()), redis_client, live_clock, [])
    browser = start_sign_in(app, JENNY)

    browser.submit("/resend")
    assert browser.page is not None
    assert browser.page.status_code == 429
    assert "ask for a new one in 30 s" in alert(browser)

    for _ in range(Limits().resends):
        live_clock.advance(Limits().resend_cooldown)
        browser.submit("/resend")
    live_clock.advance(Limits().resend_cooldown)
    browser.submit("/resend")
    assert "No more codes" in alert(browser)


# Any instance, any step: the sandbox's sessions live in Redis.


class Alternating:
    """Two instances behind a load balancer that sends each request to the next one."""

    def __init__(self, *apps: Flask) -> None:
        self.apps = apps
        self.served = [0] * len(apps)
        self._next = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        index = self._next
        self._next = (index + 1) % len(self.apps)
        self.served[index] += 1
        return self.apps[index](environ, start_response)

    def test_client(self) -> Client:
        return Client(self, TestResponse)


def test_two_instances_on_one_redis_take_turns_at_every_step_of_twenty_sign_ins(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    settings = settings_for(provider_config())
    console: list[str] = []
    both = Alternating(
        app_for(settings, redis_client, live_clock, console),
        app_for(settings, redis_client, live_clock, console),
    )
    shop = RelyingParty(both, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)  # type: ignore[arg-type]

    emails = []
    for _ in range(20):
        browser = Browser(both, ISSUER)  # type: ignore[arg-type]
        request = shop.authorization_request()
        browser.start(request.url)
        browser.submit("/email", email=JENNY)
        answer = browser.submit("/code", code=announced_code(console))
        token = shop.exchange(answer.headers["Location"], request)
        emails.append(shop.validate_id_token(token, request.nonce)["email"])

    assert emails == [JENNY] * 20
    assert min(both.served) >= 20 * 3
