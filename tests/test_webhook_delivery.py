"""One webhook delivery attempt (oidc_link/webhooks/delivery.py) against real HTTP(S)
receivers on loopback sockets: signed as the SDK verifies, judged by the answer (2xx
delivered, 410 gone, anything else retried), over outbound.py's guarded connection."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from oidc_link.client import Webhook
from oidc_link.clock import FixedClock
from oidc_link.config.webhooks import WebhookEndpoint
from oidc_link.outbound import Outbound
from oidc_link.webhooks.delivery import DeliveryResult, Outcome, WebhookSender
from oidc_link.webhooks.signature import SIGNATURE_HEADER
from tests.tls_certificates import make_certificates

SECRET = "whsec_" + "n" * 43
OLD_SECRET = "whsec_" + "o" * 43
# A value inside the event that must never reach a log line.
PAYLOAD_SECRET = "jenny.private@example.com"
PAYLOAD = json.dumps(
    {
        "id": "evt_9",
        "object": "event",
        "type": "account.updated",
        "created": 1_800_000_000,
        "data": {"object": {"id": "acct_9", "object": "account", "email": PAYLOAD_SECRET}},
    }
).encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A platform's endpoint on 127.0.0.1: answers ``status`` (with ``headers``) to every
    POST and records it; ``hang`` holds the answer until the test ends."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                if receiver.hang:
                    receiver.release.wait(10)
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        if self.tls is not None:
            self._http.socket = self.tls.wrap_socket(self._http.socket, server_side=True)
        self.port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, args=(0.01,), daemon=True).start()

    def url(self, path: str = "/hooks/oidc-link") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def endpoint_at(url: str, secrets: tuple[str, ...] = (SECRET,)) -> WebhookEndpoint:
    return WebhookEndpoint("shop", url, frozenset({"*"}), secrets)


def development_sender(clock: FixedClock, deadline: float = 5.0) -> WebhookSender:
    """Sandbox/development: outbound.py lets the configured URL be loopback, over http."""
    return WebhookSender(Outbound(exact_loopback=True), clock, deadline=deadline)


def deliver(sender: WebhookSender, endpoint: WebhookEndpoint) -> DeliveryResult:
    return sender.attempt(endpoint, event_id="evt_9", event_type="account.updated", payload=PAYLOAD)


def test_a_2xx_is_delivered_and_the_receiver_verifies_it_with_the_sdk(
    receiver: Receiver, clock: FixedClock
) -> None:
    result = deliver(development_sender(clock), endpoint_at(receiver.url()))

    assert result == DeliveryResult(Outcome.DELIVERED, 200, "HTTP 200")
    (request,) = receiver.received
    assert request.path == "/hooks/oidc-link"
    assert request.body == PAYLOAD
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    header = request.headers[SIGNATURE_HEADER]
    assert header.startswith(f"t={clock.now()},v1=")
    event = Webhook.construct_event(request.body, header, SECRET, now=clock.now())
    assert event.id == "evt_9"
    assert event.data.object.email == PAYLOAD_SECRET


def test_the_signature_time_comes_from_the_clock(receiver: Receiver, clock: FixedClock) -> None:
    clock.advance(3600)

    deliver(development_sender(clock), endpoint_at(receiver.url()))

    assert receiver.received[0].headers[SIGNATURE_HEADER].startswith(f"t={clock.now()},")


def test_during_a_rotation_a_receiver_on_either_secret_accepts_the_delivery(
    receiver: Receiver, clock: FixedClock
) -> None:
    deliver(development_sender(clock), endpoint_at(receiver.url(), (SECRET, OLD_SECRET)))

    (request,) = receiver.received
    header = request.headers[SIGNATURE_HEADER]
    assert header.count("v1=") == 2
    for secret in (SECRET, OLD_SECRET):
        assert Webhook.construct_event(request.body, header, secret, now=clock.now()).id == "evt_9"


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_every_2xx_acknowledges(receiver: Receiver, clock: FixedClock, status: int) -> None:
    receiver.status = status

    result = deliver(development_sender(clock), endpoint_at(receiver.url()))

    assert (result.outcome, result.status) == (Outcome.DELIVERED, status)


def test_a_410_says_the_endpoint_is_gone(receiver: Receiver, clock: FixedClock) -> None:
    receiver.status = 410

    result = deliver(development_sender(clock), endpoint_at(receiver.url()))

    assert (result.outcome, result.status) == (Outcome.GONE, 410)


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 502, 503])
def test_any_other_answer_is_retried(receiver: Receiver, clock: FixedClock, status: int) -> None:
    receiver.status = status

    result = deliver(development_sender(clock), endpoint_at(receiver.url()))

    assert result == DeliveryResult(Outcome.RETRY, status, f"HTTP {status}")


def test_a_redirect_is_not_followed_and_is_retried(receiver: Receiver, clock: FixedClock) -> None:
    receiver.status = 302
    receiver.headers = {"Location": receiver.url("/elsewhere")}

    result = deliver(development_sender(clock), endpoint_at(receiver.url()))

    assert result.outcome is Outcome.RETRY
    assert result.reason == "HTTP 302: redirects are not followed"
    assert [request.path for request in receiver.received] == ["/hooks/oidc-link"]


def test_a_receiver_that_does_not_answer_in_time_is_retried(clock: FixedClock) -> None:
    slow = Receiver(hang=True)
    try:
        result = deliver(development_sender(clock, deadline=0.3), endpoint_at(slow.url()))
    finally:
        slow.close()

    assert result == DeliveryResult(Outcome.RETRY, None, "took longer than 0.3 s")
    assert len(slow.received) == 1


def test_a_refused_connection_is_retried(clock: FixedClock) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    result = deliver(development_sender(clock), endpoint_at(f"http://127.0.0.1:{port}/hooks"))

    assert result.outcome is Outcome.RETRY
    assert result.status is None
    assert result.reason.startswith("cannot connect to 127.0.0.1")


def test_outside_development_a_loopback_endpoint_is_refused_before_connecting(
    receiver: Receiver, clock: FixedClock
) -> None:
    sender = WebhookSender(Outbound(), clock)

    result = deliver(sender, endpoint_at(receiver.url()))

    assert result.outcome is Outcome.RETRY
    assert result.reason == "the URL's host 127.0.0.1 is a loopback address (127.0.0.1)"
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.7/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:192.168.1.1]/hooks",
    ],
)
def test_private_and_metadata_addresses_are_refused_even_in_development(
    clock: FixedClock, url: str
) -> None:
    result = deliver(development_sender(clock), endpoint_at(url))

    assert result.outcome is Outcome.RETRY
    assert result.status is None
    assert " is a" in result.reason


def test_https_to_a_public_address_is_delivered_and_verified(
    tmp_path: Path, clock: FixedClock
) -> None:
    files = make_certificates(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(files.server_cert, files.server_key)
    public = Receiver(tls=server_tls)
    # 127.0.0.1 plays a public address here; the TLS context trusts only the test CA.
    outbound = Outbound(
        public_stand_ins=frozenset({ipaddress.ip_address("127.0.0.1")}),
        ssl_context=ssl.create_default_context(cafile=str(files.ca)),
    )
    try:
        result = deliver(WebhookSender(outbound, clock), endpoint_at(public.url()))
    finally:
        public.close()

    assert result.outcome is Outcome.DELIVERED
    (request,) = public.received
    header = request.headers[SIGNATURE_HEADER]
    assert Webhook.construct_event(request.body, header, SECRET, now=clock.now()).id == "evt_9"


def test_logs_name_the_event_and_endpoint_but_no_secret_payload_or_query(
    receiver: Receiver, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    sender = development_sender(clock)
    url = receiver.url("/hooks/oidc-link?token=query-secret")
    endpoint = endpoint_at(url, (SECRET, OLD_SECRET))

    with caplog.at_level(logging.INFO, "oidc_link.webhooks"):
        deliver(sender, endpoint)
        receiver.status = 500
        deliver(sender, endpoint)

    assert "webhook delivered: account.updated evt_9 to http://127.0.0.1" in caplog.text
    assert "webhook retry: account.updated evt_9" in caplog.text
    assert "client shop (HTTP 500)" in caplog.text
    for secret in (SECRET, OLD_SECRET, PAYLOAD_SECRET, "query-secret", "v1="):
        assert secret not in caplog.text
    assert receiver.received[0].path == "/hooks/oidc-link?token=query-secret"
