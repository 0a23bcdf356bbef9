"""Webhook answers acted on by the outbox's real relay and worker (issue 18 item 3), not the
stand-in of tests/outbox_delivery.py: a 2xx acknowledges, any other answer is retried after
its backoff until a 2xx, a 410 disables the endpoint. And the address policy of the notes
(item 2), as services.py wires outbound.py for webhooks: outside development a loopback or
private endpoint is never connected to. The relay and worker run one step at a time on the
FixedClock (their threads are exercised by tests/test_webhooks_end_to_end.py).
On fakeredis, a real redis-server, Sentinel and Redis Cluster."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from oidc_link import create_app
from oidc_link.client import Webhook
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.ids import digest
from oidc_link.services import Services, build_services
from oidc_link.store import keyspace
from oidc_link.webhooks.signature import SIGNATURE_HEADER
from tests.api_client import SHOP_KEY, Platform, api_config
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL, SHOP_SECRET
from tests.loopback_posts import serving_posts
from tests.test_production_config import live_config

pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]

HOOK_SECRET = "whsec_" + "w" * 43


class Receiver:
    """Endpoints on one loopback port, told apart by path: each POST is kept (path, body,
    signature) and answered with its path's next scripted status, 200 once it runs out."""

    def __init__(self, statuses: dict[str, list[int]], clock: FixedClock) -> None:
        self.statuses = statuses
        self.clock = clock
        self.posts: list[tuple[str, bytes, str, int]] = []
        self.base = ""

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        signature = handler.headers.get(SIGNATURE_HEADER, "")
        self.posts.append((handler.path, body, signature, self.clock.now()))
        script = self.statuses.get(handler.path, [])
        handler.send_response(script.pop(0) if script else 200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def events_at(self, path: str) -> list[dict[str, Any]]:
        return [
            Webhook.construct_event(body, signature, HOOK_SECRET, now=received_at)
            for at, body, signature, received_at in self.posts
            if at == path
        ]


@pytest.fixture
def receiver(clock: FixedClock) -> Iterator[Receiver]:
    # /flaky fails three ways, then takes the event; /gone says it no longer exists.
    state = Receiver({"/flaky": [500, 503, 429], "/gone": [410]}, clock)

    with serving_posts(state.answer) as base:
        state.base = base
        yield state


def hooked(config: dict[str, Any], urls: list[str]) -> Settings:
    """``config``'s first client (the shop) with an endpoint for every event at each URL."""
    config["clients"][0]["webhooks"] = [
        {"url": url, "events": ["*"], "secret": "${HOOK}"} for url in urls
    ]
    environment = {"SHOP_SECRET": SHOP_SECRET, "HOOK": HOOK_SECRET}
    return settings_from_mapping(config, environment, "test")


def services_for(settings: Settings, redis_client: redis.Redis, clock: FixedClock) -> Services:
    return build_services(
        settings, clock=clock, redis_client=redis_client, metrics_registry=CollectorRegistry()
    )


def run_outbox(services: Services, clock: FixedClock, rounds: int = 6) -> None:
    """The runner's relay pass and one worker, step by step; between rounds the clock
    passes the longest backoff, so every retry is due at the next pass."""
    runner = services.outbox
    services.store.deliveries.create_group()
    [worker, *_] = runner.workers
    for _ in range(rounds):
        runner.relay_pass()
        while worker.run_once():
            pass
        clock.advance(services.settings.outbox.backoff_cap + 1)


def nothing_left(redis_client: redis.Redis) -> bool:
    streams = redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1)
    waiting = sum(redis_client.xlen(stream) for stream in streams)
    pending = redis_client.xpending(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)["pending"]
    retrying = redis_client.zcard(keyspace.OUTBOX_RETRIES)
    return waiting == 0 and pending == 0 and retrying == 0


def counted(services: Services, event_type: str) -> dict[str, float]:
    """oidc_link_webhook_deliveries_total of the shop for ``event_type``, by outcome."""
    found = {}
    for outcome in ("delivered", "retry", "gone", "gave_up"):
        labels = {"event_type": event_type, "client_id": "shop", "outcome": outcome}
        value = services.metrics.registry.get_sample_value(
            "oidc_link_webhook_deliveries_total", labels
        )
        if value:
            found[outcome] = value
    return found


def test_through_the_real_worker_a_2xx_acknowledges_other_answers_are_retried_and_a_410_disables(
    receiver: Receiver, redis_client: redis.Redis, clock: FixedClock
) -> None:
    settings = hooked(api_config(), [receiver.base + path for path in ("/ok", "/flaky", "/gone")])
    services = services_for(settings, redis_client, clock)
    shop = Platform(create_app(settings, services), SHOP_KEY)
    account = shop.create_account(email="jenny@example.com")

    run_outbox(services, clock)

    [created] = receiver.events_at("/ok")
    assert (created["type"], created["account"]) == ("account.created", account["id"])
    # Three refusals, each retried, then acknowledged: four POSTs of the same event, no more.
    assert [event["id"] for event in receiver.events_at("/flaky")] == [created["id"]] * 4
    assert [event["id"] for event in receiver.events_at("/gone")] == [created["id"]]
    assert nothing_left(redis_client)
    states = {
        endpoint.url.rpartition("/")[2]: services.store.webhook_endpoints.states(
            [endpoint.endpoint_id]
        )[endpoint.endpoint_id].disabled
        for endpoint in services.webhook_deliveries.endpoints()
    }
    assert states == {"ok": False, "flaky": False, "gone": True}
    # Item 5's counters, by outcome, as the worker's attempts went.
    assert counted(services, "account.created") == {"delivered": 2, "retry": 3, "gone": 1}

    updated = shop.post(f"/v1/accounts/{account['id']}", {"metadata[plan]": "gold"})
    assert updated.status_code == 200, updated.get_json()
    run_outbox(services, clock)

    assert [event["type"] for event in receiver.events_at("/ok")][-1] == "account.updated"
    assert [event["type"] for event in receiver.events_at("/flaky")][-1] == "account.updated"
    assert len(receiver.events_at("/gone")) == 1  # disabled: not tried again
    assert nothing_left(redis_client)


def live_hooked(urls: list[str]) -> Settings:
    """Production (Link live mode) with the shop's API key: not development."""
    config = live_config()
    config["clients"][0]["api_keys"] = [digest(SHOP_KEY)]
    return hooked(config, urls)


def first_attempt_logged(
    settings: Settings,
    redis_client: redis.Redis,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> str:
    """An account created over /v1, its event relayed and attempted once by the worker;
    what the delivery's log line says."""
    services = services_for(settings, redis_client, clock)
    shop = Platform(create_app(settings, services), SHOP_KEY)
    shop.create_account(email="jenny@example.com")
    with caplog.at_level(logging.INFO, "oidc_link.webhooks"):
        run_outbox(services, clock, rounds=1)
    [line] = [record.getMessage() for record in caplog.records if "webhook " in record.getMessage()]
    return line


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://10.0.0.1/hooks", "10.0.0.1 is a private address"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a cloud metadata address",
        ),
        ("https://[::ffff:192.168.1.1]/hooks", "is a private address"),
    ],
)
def test_outside_development_a_private_or_metadata_endpoint_is_never_connected_to(
    redis_client: redis.Redis,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    url: str,
    refusal: str,
) -> None:
    # Such a URL is also a problem for `check-config --production`; an install that runs
    # without that check still never sends the event there: refused before connecting,
    # retried later (the address a name resolves to may change).
    line = first_attempt_logged(live_hooked([url]), redis_client, clock, caplog)

    assert line.startswith("webhook retry: account.created evt_")
    assert refusal in line
    assert redis_client.zcard(keyspace.OUTBOX_RETRIES) == 1


def test_a_loopback_endpoint_is_refused_in_production_and_reached_in_development(
    receiver: Receiver,
    redis_client: redis.Redis,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = receiver.base + "/ok"

    in_production = first_attempt_logged(live_hooked([url]), redis_client, clock, caplog)
    assert receiver.posts == []
    redis_client.flushdb()
    caplog.clear()
    in_development = first_attempt_logged(hooked(api_config(), [url]), redis_client, clock, caplog)

    assert "the URL's host 127.0.0.1 is a loopback address (127.0.0.1)" in in_production
    assert in_development.startswith("webhook delivered: account.created evt_")
    assert [post[0] for post in receiver.posts] == ["/ok"]
