"""Back-Channel Logout 1.0: at logout, each client of the session that registered a
``backchannel_logout_uri`` is sent a logout token by a real HTTP POST, off the request path:
the logout writes one notice to the outbox with the step that takes the session's clients,
and the outbox's kind (backchannel.py) fans it out and delivers it, so a notice survives a
stop. The outbox's worker is stood in for by tests/outbox_delivery.py.

The relying party is a real HTTP server on a loopback port. Redis is fakeredis and a real
redis-server; the tests of what is stored (the notice the logout writes, delivered by the
kind or by another instance) run on a real Redis Cluster and a Sentinel-run Redis too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from oidc_link import create_app
from oidc_link.backchannel import BACKCHANNEL_LOGOUT_NOTICE, LogoutNotices
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.metrics import Metrics
from oidc_link.outbound import Outbound
from oidc_link.outbox.handling import Outcome
from oidc_link.services import Services, build_services
from oidc_link.store.outbox import OutboxEntry
from oidc_link.store.sessions import BACKCHANNEL_LOGOUT
from tests.conftest import (
    ISSUER,
    ON_REDIS_CLUSTER,
    ON_REDIS_SENTINEL,
    POST_SECRET,
    SHOP_SECRET,
    provider_config,
)
from tests.loopback_posts import serving_posts
from tests.outbox_delivery import deliver_outbox, written
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in

# How a receiver's answers and the clients' settings steer delivery: the same on every Redis.
BEHAVIOUR = {
    "test_a_receiver_that_answers_503_twice_gets_exactly_three_attempts",
    "test_a_receiver_that_refuses_the_token_is_not_asked_again",
    "test_a_client_without_a_backchannel_logout_uri_is_not_notified",
    "test_a_session_that_signed_in_nowhere_with_a_backchannel_uri_writes_no_notice",
    "test_a_client_that_dropped_its_uri_since_the_logout_gets_no_delivery",
}
# The rest on a real Redis Cluster (issue 17 item 3) and Sentinel-run Redis (issue 18 item 6).
pytestmark = [ON_REDIS_CLUSTER(but_not=BEHAVIOUR), ON_REDIS_SENTINEL(but_not=BEHAVIOUR)]

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class LogoutReceiver:
    """A relying party's back-channel logout endpoint: records every POST and answers with
    the next scripted status (200 once the script runs out)."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length).decode()
        self.received.append(Received(handler.path, dict(handler.headers), parse_qs(body)))
        status = self.statuses.pop(0) if self.statuses else 200
        handler.send_response(status)
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@contextmanager
def logout_receiver() -> Iterator[LogoutReceiver]:
    """A LogoutReceiver listening on a loopback port until the block ends."""
    state = LogoutReceiver()
    with serving_posts(state.handle) as base:
        state.url = base + "/backchannel-logout"
        yield state


@pytest.fixture
def receiver() -> Iterator[LogoutReceiver]:
    with logout_receiver() as state:
        yield state


@pytest.fixture
def settings(receiver: LogoutReceiver) -> Settings:
    """shop takes back-channel logout notices at the receiver; blog takes none. The
    receiver is on loopback: the sandbox's outbound policy lets that exact URI be reached."""
    config = provider_config()
    clients = config["clients"]
    assert isinstance(clients, list)
    clients[0]["backchannel_logout_uri"] = receiver.url
    clients[0]["backchannel_logout_session_required"] = True
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


@pytest.fixture
def services(
    settings: Settings, redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Services:
    return build_services(
        settings,
        clock=live_clock,
        redis_client=redis_client,
        announce=console.append,
        metrics_registry=CollectorRegistry(),
    )


@pytest.fixture
def app(settings: Settings, services: Services) -> Flask:
    return create_app(settings, services)


def signed_in(browser: Browser, rp: RelyingParty, console: list[str]) -> dict[str, Any]:
    request, callback = sign_in(browser, rp, console)
    return rp.exchange(callback, request)


def log_out(browser: Browser, id_token: str):
    answer = browser.get("/logout?id_token_hint=" + id_token)
    assert answer.status_code == 200
    assert browser.soup().h1.get_text() == "You have been signed out"
    return answer


def verified_logout_token(app: Flask, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify like a relying party: our JWKS, the header's kid and alg, iss, aud."""
    jwks = app.test_client().get("/jwks.json", base_url=ISSUER).get_json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        audience="shop",
        issuer=ISSUER,
        options={"require": ["iat", "exp", "jti"]},
    )
    return header, claims


def delivered_tokens(receiver: LogoutReceiver) -> list[str]:
    return [r.form["logout_token"][0] for r in receiver.received]


def test_the_client_receives_a_logout_token_for_the_session_it_signed_in_to(
    app: Flask,
    services: Services,
    redis_client: redis.Redis,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    token = signed_in(browser, shop, console)
    id_token = jwt.decode(token["id_token"], options={"verify_signature": False})

    log_out(browser, token["id_token"])
    [delivery] = deliver_outbox(redis_client, services)

    assert delivery.outcomes == [Outcome.DELIVERED]
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request.path == "/backchannel-logout"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Cookie" not in request.headers
    assert list(request.form) == ["logout_token"]
    header, claims = verified_logout_token(app, request.form["logout_token"][0])
    assert header["typ"] == "logout+jwt"
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert claims["sid"] == id_token["sid"]
    assert claims["sub"] == id_token["sub"]
    assert "nonce" not in claims
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_the_logout_writes_one_notice_naming_the_session_and_no_token(
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    redis_client: redis.Redis,
    receiver: LogoutReceiver,
) -> None:
    token = signed_in(browser, shop, console)
    id_token = jwt.decode(token["id_token"], options={"verify_signature": False})

    log_out(browser, token["id_token"])

    # Nothing was sent from the request: the notice waits in the outbox, and carries what
    # each client's token is made from at delivery (what the client is told anyway), never
    # a token or the person's email.
    assert receiver.received == []
    [entry] = written(redis_client, BACKCHANNEL_LOGOUT)
    assert entry.kind == "backchannel_logout"
    assert entry.entry_id.startswith("bcl_")
    assert entry.body == {"sid": id_token["sid"], "subjects": {"shop": id_token["sub"]}}


def test_a_notice_written_before_a_stop_is_delivered_by_a_new_instance(
    settings: Settings,
    redis_client: redis.Redis,
    live_clock: FixedClock,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    token = signed_in(browser, shop, console)
    log_out(browser, token["id_token"])

    # Another process: nothing shared with the one that logged out but Redis.
    restarted = build_services(
        settings,
        clock=live_clock,
        redis_client=redis_client,
        metrics_registry=CollectorRegistry(),
    )
    [delivery] = deliver_outbox(redis_client, restarted)

    assert delivery.outcomes == [Outcome.DELIVERED]
    assert len(receiver.received) == 1


def test_a_receiver_that_answers_503_twice_gets_exactly_three_attempts(
    app: Flask,
    services: Services,
    redis_client: redis.Redis,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    receiver.statuses = [503, 503, 200]
    token = signed_in(browser, shop, console)

    log_out(browser, token["id_token"])
    [delivery] = deliver_outbox(redis_client, services)

    assert delivery.outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DELIVERED]
    assert len(receiver.received) == 3
    # Each attempt signs a token of its own (its short life counts from the attempt), all
    # about the same session.
    tokens = delivered_tokens(receiver)
    assert len(set(tokens)) == 3
    assert len({verified_logout_token(app, t)[1]["sid"] for t in tokens}) == 1
    counted = services.metrics.registry.get_sample_value
    labels = {"client_id": "shop"}
    assert counted("oidc_link_backchannel_logout_notices_total", labels | {"outcome": "retry"}) == 2
    delivered = labels | {"outcome": "delivered"}
    assert counted("oidc_link_backchannel_logout_notices_total", delivered) == 1


def test_a_receiver_that_refuses_the_token_is_not_asked_again(
    services: Services,
    redis_client: redis.Redis,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    receiver.statuses = [400]
    token = signed_in(browser, shop, console)

    log_out(browser, token["id_token"])
    [delivery] = deliver_outbox(redis_client, services)

    assert delivery.outcomes == [Outcome.GIVE_UP]
    assert len(receiver.received) == 1


def test_outside_development_a_loopback_receiver_is_refused_once_and_never_contacted(
    settings: Settings, receiver: LogoutReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The address policy (outbound.py) is final: no retry could change it."""
    shop = settings.client("shop")
    assert shop is not None
    with_query = replace(shop, backchannel_logout_uri=receiver.url + "?secret=x")
    strict = LogoutNotices(
        lambda client_id: with_query if client_id == "shop" else None,
        lambda client, sid, sub: "a-logout-token",
        Outbound(),
        Metrics.standalone(),
    )
    notice = OutboxEntry(
        BACKCHANNEL_LOGOUT_NOTICE,
        "bcl_1:shop",
        {"sid": "sid_1", "sub": "acct_1", "client_id": "shop"},
    )

    with caplog.at_level(logging.INFO, "oidc_link.backchannel"):
        assert strict.deliver(notice, 1) is Outcome.GIVE_UP

    assert receiver.received == []
    assert (
        f"Back-channel logout to client shop at {receiver.url}: the URL's host 127.0.0.1 is "
        "a loopback address (127.0.0.1) (attempt 1)" in caplog.text
    )
    assert "secret=x" not in caplog.text


def test_a_client_without_a_backchannel_logout_uri_is_not_notified(
    app: Flask,
    services: Services,
    redis_client: redis.Redis,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    signed_in(browser, shop, console)
    blog = RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        "client_secret_post",
        scope="openid email",
    )
    request = blog.authorization_request()
    blog_token = blog.exchange(browser.get(request.url).headers["Location"], request)

    log_out(browser, blog_token["id_token"])
    deliver_outbox(redis_client, services)

    audiences = [
        jwt.decode(token, options={"verify_signature": False})["aud"]
        for token in delivered_tokens(receiver)
    ]
    assert audiences == ["shop"]


def test_a_session_that_signed_in_nowhere_with_a_backchannel_uri_writes_no_notice(
    app: Flask,
    services: Services,
    redis_client: redis.Redis,
    browser: Browser,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    blog = RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        "client_secret_post",
        scope="openid email",
    )
    token = signed_in(browser, blog, console)

    log_out(browser, token["id_token"])

    assert written(redis_client, BACKCHANNEL_LOGOUT) == []
    assert deliver_outbox(redis_client, services) == []
    assert receiver.received == []


def test_a_client_that_dropped_its_uri_since_the_logout_gets_no_delivery(
    settings: Settings,
    redis_client: redis.Redis,
    live_clock: FixedClock,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
) -> None:
    token = signed_in(browser, shop, console)
    log_out(browser, token["id_token"])

    # Restarted with a configuration where shop no longer takes notices.
    config = provider_config()
    changed = build_services(
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test"),
        clock=live_clock,
        redis_client=redis_client,
        metrics_registry=CollectorRegistry(),
    )

    assert deliver_outbox(redis_client, changed) == []
    assert receiver.received == []
