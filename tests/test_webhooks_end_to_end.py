"""Issue 18 end to end: a platform's /v1 changes reach its webhook endpoint, signed as Stripe
signs, through the outbox's real relay and delivery threads (as every instance runs them),
and the same events are listed at GET /v1/events; nothing stays in the outbox after. On
fakeredis, a real redis-server, Sentinel and Redis Cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import redis
from prometheus_client import CollectorRegistry

from oidc_link import create_app
from oidc_link.client import Webhook
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.services import Services, build_services
from oidc_link.store import keyspace
from oidc_link.webhooks.signature import SIGNATURE_HEADER
from tests.api_client import SHOP_KEY, Platform, api_config
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL, SHOP_SECRET
from tests.loopback_posts import serving_posts

pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]

HOOK_SECRET = "whsec_" + "e" * 43
# Waiting for the outbox's threads (they poll every poll_interval): a bound, not a timing.
PATIENCE = 30.0


class Endpoint:
    """A platform's webhook endpoint on loopback: keeps each POST's body and signature."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str]] = []
        self.arrived = threading.Condition()

    def took(self, body: bytes, signature: str) -> None:
        with self.arrived:
            self.posts.append((body, signature))
            self.arrived.notify_all()

    def wait_for(self, count: int) -> list[tuple[bytes, str]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout=PATIENCE)
            return list(self.posts)


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    state = Endpoint()

    def answer(request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        state.took(body, request.headers.get(SIGNATURE_HEADER, ""))
        request.send_response(200)
        request.send_header("Content-Length", "0")
        request.end_headers()

    with serving_posts(answer) as base:
        yield state, base + "/hooks"


def hooked_settings(url: str) -> Settings:
    """The API's test clients, the shop with one endpoint for every event."""
    config = api_config()
    config["clients"][0]["webhooks"] = [{"url": url, "events": ["*"], "secret": "${HOOK}"}]
    config["outbox"] = {"poll_interval": 0.1}
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET, "HOOK": HOOK_SECRET}, "test")


@pytest.fixture
def running(
    endpoint: tuple[Endpoint, str], redis_client: redis.Redis, live_clock: FixedClock
) -> Iterator[tuple[Platform, Services]]:
    settings = hooked_settings(endpoint[1])
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, metrics_registry=CollectorRegistry()
    )
    services.outbox.start()
    try:
        yield Platform(create_app(settings, services), SHOP_KEY), services
    finally:
        services.outbox.stop()


def drained(redis_client: redis.Redis) -> bool:
    """Nothing waits in an aggregate's stream or for delivery (the relay forgets an emptied
    stream's announcement only after a grace, so the streams themselves are looked at)."""
    streams = redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1)
    waiting = sum(redis_client.xlen(stream) for stream in streams)
    deliveries = keyspace.OUTBOX_DELIVERIES
    pending = redis_client.xpending(deliveries, keyspace.OUTBOX_GROUP)["pending"]
    return waiting == 0 and pending == 0


def test_an_account_s_changes_reach_its_platform_signed_and_are_listed_as_events(
    endpoint: tuple[Endpoint, str],
    running: tuple[Platform, Services],
    redis_client: redis.Redis,
) -> None:
    receiver, _ = endpoint
    shop, _ = running
    account = shop.create_account(email="jenny@example.com")
    updated = shop.post(f"/v1/accounts/{account['id']}", {"metadata[plan]": "gold"})
    assert updated.status_code == 200, updated.get_json()

    posts = receiver.wait_for(2)

    events = [Webhook.construct_event(body, signature, HOOK_SECRET) for body, signature in posts]
    assert sorted(event["type"] for event in events) == ["account.created", "account.updated"]
    assert {event["account"] for event in events} == {account["id"]}
    [update] = [event for event in events if event["type"] == "account.updated"]
    assert update["data"]["object"]["metadata"] == {"plan": "gold"}
    # As Stripe tells it: the key had no value before.
    assert update["data"]["previous_attributes"] == {"metadata": {"plan": None}}
    listed = shop.get("/v1/events").get_json()
    assert sorted(event["id"] for event in listed["data"]) == sorted(e["id"] for e in events)
    deadline = time.monotonic() + PATIENCE
    while not drained(redis_client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert drained(redis_client)
    assert len(receiver.posts) == 2  # once each: acknowledged, not sent again
