"""Webhook deliveries on the outbox (issue 18 items 2-3): an event written to an aggregate's
stream is fanned out to each enabled endpoint subscribed to its type among the clients
allowed to see it, and each delivery is a signed POST whose answer decides: 2xx delivered,
410 disables the endpoint, anything else retried.

Receivers are real HTTP servers on loopback; Redis is fakeredis, a real redis-server and a
real Redis Cluster; tests/outbox_delivery.py stands in for the outbox's worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from oidc_link.client import Webhook
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.config.webhooks import WebhookEndpoint
from oidc_link.outbound import Outbound
from oidc_link.outbox.handling import Outcome
from oidc_link.services import Services, build_services
from oidc_link.store import keyspace
from oidc_link.store.outbox import OutboxEntry
from oidc_link.webhooks.deliveries import WEBHOOK_DELIVERY, WebhookDeliveries
from oidc_link.webhooks.delivery import WebhookSender
from oidc_link.webhooks.signature import SIGNATURE_HEADER
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL, SHOP_SECRET, provider_config
from tests.loopback_posts import serving_posts
from tests.outbox_delivery import deliver_outbox

pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]

SHOP_HOOK_SECRET = "whsec_" + "s" * 43
BLOG_HOOK_SECRET = "whsec_" + "b" * 43
# A value inside the event that must never reach a log line.
PRIVATE_EMAIL = "jenny.private@example.com"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Platforms' endpoints on one loopback port, told apart by path: each POST is recorded
    and answered with its path's next scripted status (200 once the script runs out)."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    base: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        self.received.append(Received(handler.path, dict(handler.headers.items()), body))
        script = self.statuses.get(handler.path, [])
        handler.send_response(script.pop(0) if script else 200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    with serving_posts(state.handle) as base:
        state.base = base
        yield state


def hooked_settings(receiver: Receiver) -> Settings:
    """shop: one endpoint for every event (/all, its URL with a query) and one for
    account.updated only (/updated); blog: one for every event (/blog)."""
    config = provider_config()
    clients: list[dict[str, Any]] = config["clients"]  # type: ignore[assignment]
    clients[0]["webhooks"] = [
        {"url": receiver.base + "/all?token=q", "events": ["*"], "secret": "${SHOP_HOOK}"},
        {
            "url": receiver.base + "/updated",
            "events": ["account.updated"],
            "secret": "${SHOP_HOOK}",
        },
    ]
    clients[1]["webhooks"] = [
        {"url": receiver.base + "/blog", "events": ["*"], "secret": "${BLOG_HOOK}"}
    ]
    environment = {
        "SHOP_SECRET": SHOP_SECRET,
        "SHOP_HOOK": SHOP_HOOK_SECRET,
        "BLOG_HOOK": BLOG_HOOK_SECRET,
    }
    return settings_from_mapping(config, environment, "test")


@pytest.fixture
def services(
    receiver: Receiver, redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Services:
    return build_services(
        hooked_settings(receiver),
        clock=live_clock,
        redis_client=redis_client,
        announce=console.append,
        metrics_registry=CollectorRegistry(),
    )


def event(event_id: str = "evt_1", event_type: str = "account.updated") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1_800_000_000,
        "data": {
            "object": {"id": "acct_1", "object": "account", "email": PRIVATE_EMAIL},
            "previous_attributes": {"email": "old@example.com"},
        },
        "request": {"id": "req_1", "idempotency_key": None},
        "owner": "shop",
        "client_ids": ["shop"],
    }


def written(services: Services, redis_client: redis.Redis, body: dict[str, Any]) -> None:
    """As the events' store writes an event: announced, then added with its change."""
    stream = services.store.outbox.announce(keyspace.account("acct_1"))
    redis_client.xadd(stream, OutboxEntry("event", body["id"], body).fields())


def endpoint_id(services: Services, path: str) -> str:
    [found] = [
        endpoint
        for endpoint in services.webhook_deliveries.endpoints()
        if endpoint.url.split("?")[0].endswith(path)
    ]
    return found.endpoint_id


def deliveries_counted(services: Services, outcome: str, event_type: str = "account.updated"):
    labels = {"event_type": event_type, "client_id": "shop", "outcome": outcome}
    return services.metrics.registry.get_sample_value("oidc_link_webhook_deliveries_total", labels)


def test_an_event_reaches_each_subscribed_endpoint_of_its_clients_signed_and_without_its_audience(
    services: Services, redis_client: redis.Redis, receiver: Receiver
) -> None:
    written(services, redis_client, event())

    deliveries = deliver_outbox(redis_client, services)

    assert sorted(d.entry.entry_id for d in deliveries) == sorted(
        f"evt_1:{endpoint_id(services, path)}" for path in ("/all", "/updated")
    )
    assert {d.entry.kind for d in deliveries} == {WEBHOOK_DELIVERY}
    assert [d.outcomes for d in deliveries] == [[Outcome.DELIVERED]] * 2
    # blog may not see shop's account: its endpoint gets nothing.
    assert sorted(r.path for r in receiver.received) == ["/all?token=q", "/updated"]
    for request in receiver.received:
        assert request.headers["Content-Type"] == "application/json; charset=utf-8"
        verified = Webhook.construct_event(
            request.body, request.headers[SIGNATURE_HEADER], SHOP_HOOK_SECRET
        )
        assert verified.id == "evt_1"
        assert verified.data.previous_attributes.email == "old@example.com"
        assert json.loads(request.body) == {
            name: value for name, value in event().items() if name not in ("owner", "client_ids")
        }
    assert deliveries_counted(services, "delivered") == 2


def test_an_endpoint_gets_only_the_event_types_it_subscribed_to(
    services: Services, redis_client: redis.Redis, receiver: Receiver
) -> None:
    written(services, redis_client, event("evt_2", "account.created"))

    deliver_outbox(redis_client, services)

    assert [r.path for r in receiver.received] == ["/all?token=q"]


def test_an_event_for_no_subscribed_client_is_delivered_nowhere(
    services: Services, redis_client: redis.Redis, receiver: Receiver
) -> None:
    written(services, redis_client, {**event("evt_3"), "client_ids": ["spa"]})

    assert deliver_outbox(redis_client, services) == []
    assert receiver.received == []


def test_a_receiver_that_fails_three_times_then_succeeds_gets_the_event_once_acknowledged(
    services: Services, redis_client: redis.Redis, receiver: Receiver
) -> None:
    receiver.statuses["/updated"] = [500, 503, 400, 200]
    written(services, redis_client, event())

    deliveries = deliver_outbox(redis_client, services)

    [updated] = [
        d for d in deliveries if d.entry.entry_id.endswith(endpoint_id(services, "/updated"))
    ]
    assert updated.outcomes == [Outcome.RETRY] * 3 + [Outcome.DELIVERED]
    attempts = receiver.at("/updated")
    assert len(attempts) == 4
    assert {json.loads(a.body)["id"] for a in attempts} == {"evt_1"}
    assert deliveries_counted(services, "retry") == 3
    assert deliveries_counted(services, "delivered") == 2  # and /all's at once
    state = services.store.webhook_endpoints.states([endpoint_id(services, "/updated")])
    last = state[endpoint_id(services, "/updated")]
    assert (last.last_event_id, last.last_outcome, last.last_reason) == (
        "evt_1",
        "delivered",
        "HTTP 200",
    )


def test_a_410_disables_the_endpoint_which_then_gets_no_new_deliveries_until_enabled(
    services: Services, redis_client: redis.Redis, receiver: Receiver, live_clock: FixedClock
) -> None:
    receiver.statuses["/updated"] = [410]
    gone = endpoint_id(services, "/updated")
    written(services, redis_client, event())

    [updated] = [
        d for d in deliver_outbox(redis_client, services) if d.entry.entry_id.endswith(gone)
    ]

    assert updated.outcomes == [Outcome.GIVE_UP]
    state = services.store.webhook_endpoints.states([gone])[gone]
    assert state.disabled
    assert state.disabled_at == live_clock.now()
    assert state.disabled_reason == "HTTP 410: the receiver removed the endpoint"
    assert deliveries_counted(services, "gone") == 1
    # The next event goes to the other endpoint only.
    written(services, redis_client, event("evt_4"))
    later = deliver_outbox(redis_client, services)
    assert [d.entry.entry_id for d in later] == [f"evt_4:{endpoint_id(services, '/all')}"]
    assert len(receiver.at("/updated")) == 1
    # Enabled again by the operator: it gets the next one.
    assert services.store.webhook_endpoints.enable(gone) is True
    assert services.store.webhook_endpoints.enable(gone) is False
    written(services, redis_client, event("evt_5"))
    deliver_outbox(redis_client, services)
    assert len(receiver.at("/updated")) == 2


def test_an_endpoint_disabled_after_the_fan_out_is_not_tried(
    services: Services, receiver: Receiver
) -> None:
    entry = OutboxEntry("event", "evt_6", event("evt_6"))
    deliveries = services.webhook_deliveries.fan_out(entry)
    services.store.webhook_endpoints.disable(endpoint_id(services, "/all"), "by hand")

    outcomes = [services.webhook_deliveries.deliver(d, 1) for d in deliveries]

    assert sorted(o.value for o in outcomes) == ["delivered", "give_up"]
    assert [r.path for r in receiver.received] == ["/updated"]
    assert deliveries_counted(services, "gave_up") == 1


def test_an_endpoint_removed_from_the_configuration_since_the_fan_out_is_given_up(
    services: Services, redis_client: redis.Redis, live_clock: FixedClock, receiver: Receiver
) -> None:
    deliveries = services.webhook_deliveries.fan_out(OutboxEntry("event", "evt_7", event("evt_7")))
    config = provider_config()
    restarted = build_services(
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test"),
        clock=live_clock,
        redis_client=redis_client,
        metrics_registry=CollectorRegistry(),
    )

    assert [restarted.webhook_deliveries.deliver(d, 1) for d in deliveries] == [
        Outcome.GIVE_UP,
        Outcome.GIVE_UP,
    ]
    assert receiver.received == []


def test_the_fan_out_keeps_each_event_with_the_events_store_and_in_the_log(
    services: Services, receiver: Receiver
) -> None:
    kept: list[dict[str, Any]] = []
    deliveries = WebhookDeliveries(
        services.settings,
        services.store.webhook_endpoints,
        WebhookSender(Outbound.for_settings(services.settings), services.clock),
        services.metrics,
        save_event=kept.append,
    )

    deliveries.fan_out(OutboxEntry("event", "evt_8", event("evt_8")))

    assert kept == [event("evt_8")]  # the whole entry body: who may see it too
    assert services.store.webhook_endpoints.recent_events(5) == [event("evt_8")]


def test_delivery_logs_name_the_event_and_endpoint_but_never_the_payload_a_secret_or_the_query(
    services: Services,
    redis_client: redis.Redis,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.statuses["/all?token=q"] = [410]
    written(services, redis_client, event())

    with caplog.at_level(logging.INFO, "oidc_link"):
        deliver_outbox(redis_client, services)

    assert "evt_1" in caplog.text
    assert receiver.base + "/all" in caplog.text
    assert "disabled" in caplog.text
    for never in (PRIVATE_EMAIL, SHOP_HOOK_SECRET, "token=q", "old@example.com"):
        assert never not in caplog.text


def test_a_resent_event_is_fanned_out_again_to_the_endpoints_subscribed_now(
    services: Services, redis_client: redis.Redis, receiver: Receiver
) -> None:
    written(services, redis_client, event())
    deliver_outbox(redis_client, services)
    endpoints = services.store.webhook_endpoints
    endpoints.disable(endpoint_id(services, "/updated"), "by hand")

    logged = endpoints.logged_event("evt_1")
    assert logged == event()
    entry_id = endpoints.resend(logged)
    again = deliver_outbox(redis_client, services)

    assert entry_id.startswith("resend_")
    assert [d.entry.entry_id for d in again] == [f"{entry_id}:{endpoint_id(services, '/all')}"]
    assert [d.outcomes for d in again] == [[Outcome.DELIVERED]]
    assert [json.loads(r.body)["id"] for r in receiver.at("/all?token=q")] == ["evt_1", "evt_1"]
    assert endpoints.logged_event("evt_unknown") is None


def test_an_endpoints_id_stays_with_its_client_and_url_whatever_its_events() -> None:
    first = WebhookEndpoint("shop", "https://shop.example.com/hooks", frozenset({"*"}), ("s",))
    same = WebhookEndpoint("shop", first.url, frozenset({"account.updated"}), ("t",))
    other_client = WebhookEndpoint("blog", first.url, first.events, first.secrets)
    other_url = WebhookEndpoint("shop", first.url + "/2", first.events, first.secrets)

    assert first.endpoint_id == same.endpoint_id
    assert first.endpoint_id.startswith("we_") and len(first.endpoint_id) == 3 + 16
    assert len({first.endpoint_id, other_client.endpoint_id, other_url.endpoint_id}) == 3
