"""Back-Channel Logout 1.0: at logout, each client of the session that registered a
``backchannel_logout_uri`` is sent a logout token by a real HTTP POST, off the request path.

The relying party is a real HTTP server on a loopback port; the provider runs on the
embedded fakeredis (this is about behaviour, not storage).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.backchannel import BackchannelDelivery, LogoutNotice
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.outbound import Outbound
from oidc_link.services import build_services
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, POST_SECRET, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


@dataclass
class LogoutReceiver:
    """A relying party's back-channel logout endpoint: records every POST and answers with
    the next scripted status (200 once the script runs out). While ``hold`` is set, each
    request waits for ``release`` before answering."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    url: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        body = handler.rfile.read(length).decode()
        self.received.append(Received(handler.path, dict(handler.headers), parse_qs(body)))
        self.arrived.set()
        if self.hold:
            self.release.wait(30)
        status = self.statuses.pop(0) if self.statuses else 200
        # Counted before the answer leaves: once the sender has it, the count is right.
        self.answered += 1
        handler.send_response(status)
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture
def receiver() -> Iterator[LogoutReceiver]:
    state = LogoutReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/backchannel-logout"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def delivery() -> Iterator[BackchannelDelivery]:
    # Short waits between attempts; the deadline is long enough that a hanging receiver
    # would visibly hold a logout that waited for it. The receiver is on loopback: the
    # sandbox's policy (Outbound.for_settings) lets that exact URI be reached.
    running = BackchannelDelivery(
        Outbound(exact_loopback=True), retry_delays=(0.05, 0.1), deadline=20.0
    )
    yield running
    running.close()


@pytest.fixture
def app(
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
    embedded_redis: redis.Redis,
    live_clock: FixedClock,
    console: list[str],
) -> Flask:
    config = provider_config()
    clients = config["clients"]
    assert isinstance(clients, list)
    clients[0]["backchannel_logout_uri"] = receiver.url
    clients[0]["backchannel_logout_session_required"] = True
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=embedded_redis, announce=console.append
    )
    return create_app(settings, services, backchannel=delivery)


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


def test_the_client_receives_a_logout_token_for_the_session_it_signed_in_to(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
) -> None:
    token = signed_in(browser, shop, console)
    id_token = jwt.decode(token["id_token"], options={"verify_signature": False})

    log_out(browser, token["id_token"])

    assert delivery.wait_until_idle(10)
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


def test_a_receiver_that_answers_503_twice_gets_exactly_three_attempts(
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
) -> None:
    receiver.statuses = [503, 503, 200]
    token = signed_in(browser, shop, console)

    log_out(browser, token["id_token"])

    assert delivery.wait_until_idle(10)
    assert len(receiver.received) == 3
    assert len({r.form["logout_token"][0] for r in receiver.received}) == 1


def test_a_receiver_that_refuses_the_token_is_not_asked_again(
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
) -> None:
    receiver.statuses = [400]
    token = signed_in(browser, shop, console)

    log_out(browser, token["id_token"])

    assert delivery.wait_until_idle(10)
    assert len(receiver.received) == 1


def test_outside_development_a_loopback_receiver_is_refused_once_and_never_contacted(
    receiver: LogoutReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The address policy (outbound.py) is final: no retry could change it."""
    strict = BackchannelDelivery(Outbound(), retry_delays=(0.05, 0.1))
    notice = LogoutNotice("shop", receiver.url + "?secret=x", "a-logout-token")

    with caplog.at_level(logging.INFO, "oidc_link.backchannel"):
        assert strict.send(notice)
        assert strict.wait_until_idle(10)
    strict.close()

    assert receiver.received == []
    assert (
        f"Back-channel logout to client shop at {receiver.url}: the URL's host 127.0.0.1 is "
        "a loopback address (127.0.0.1) (attempt 1)" in caplog.text
    )
    assert "secret=x" not in caplog.text


def test_a_receiver_that_hangs_does_not_hold_up_the_logout_page(
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
) -> None:
    receiver.hold = True
    token = signed_in(browser, shop, console)

    log_out(browser, token["id_token"])

    # The page is back, and the one delivery is still waiting at the receiver: nothing
    # was answered yet (a logout waiting for it would have seen an answer or a timeout,
    # and retried).
    assert receiver.arrived.wait(10)
    assert receiver.answered == 0
    assert len(receiver.received) == 1
    receiver.release.set()
    assert delivery.wait_until_idle(10)
    assert receiver.answered == 1


def test_a_client_without_a_backchannel_logout_uri_is_not_notified(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
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

    assert delivery.wait_until_idle(10)
    audiences = [
        jwt.decode(r.form["logout_token"][0], options={"verify_signature": False})["aud"]
        for r in receiver.received
    ]
    assert audiences == ["shop"]


def test_a_session_that_signed_in_nowhere_with_a_backchannel_uri_sends_nothing(
    app: Flask,
    browser: Browser,
    console: list[str],
    receiver: LogoutReceiver,
    delivery: BackchannelDelivery,
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

    assert delivery.wait_until_idle(10)
    assert receiver.received == []
