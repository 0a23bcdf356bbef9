"""``oidc-link events list | resend ID | endpoints [enable ID]`` against a real redis-server,
with events fanned out and delivered by the real kinds to a receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from oidc_link.cli import main
from oidc_link.config import load_settings
from oidc_link.outbox.handling import Outcome
from oidc_link.services import Services, build_services
from oidc_link.store.outbox import OutboxEntry
from tests.outbox_delivery import deliver_outbox, written
from tests.test_webhook_deliveries import SHOP_HOOK_SECRET, Receiver, event, receiver  # noqa: F401

CONFIG = """
redis_url = "{redis_url}"
issuer = "https://login.example.test"

[[link.sandbox.users]]
email = "jenny@example.com"
phone = "+14155550123"

[[clients]]
client_id = "shop"
client_secret = "0123456789abcdef0123"
redirect_uris = ["https://shop.example.test/callback"]

[[clients.webhooks]]
url = "{base}/hooks?key=never-shown"
events = ["account.updated", "account.deleted"]
secret = "${{SHOP_HOOK}}"
"""


@pytest.fixture
def config(
    tmp_path: Path,
    redis_server_url: str,
    receiver: Receiver,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A configuration file on the test redis-server (emptied), its secret in the process
    environment, where an operator puts it."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    monkeypatch.setenv("SHOP_HOOK", SHOP_HOOK_SECRET)
    path = tmp_path / "events.toml"
    path.write_text(CONFIG.format(redis_url=redis_server_url, base=receiver.base))
    yield str(path)
    client.flushdb()


@pytest.fixture
def services(config: str) -> Services:
    """The running provider's side: the same configuration and Redis."""
    return build_services(load_settings(config), metrics_registry=CollectorRegistry())


def handed_on(services: Services, *events: dict[str, Any]) -> None:
    """Each event fanned out and delivered, as the outbox's worker does."""
    for body in events:
        for delivery in services.webhook_deliveries.fan_out(OutboxEntry("event", body["id"], body)):
            services.webhook_deliveries.deliver(delivery, 1)


def redis_of(services: Services) -> redis.Redis:
    return redis.Redis.from_url(services.settings.redis_url, decode_responses=True)


def test_events_list_shows_the_recent_events_newest_first(
    config: str, services: Services, capsys: pytest.CaptureFixture
) -> None:
    handed_on(services, event("evt_old"), event("evt_new", "account.deleted"))

    assert main(["events", "--config", config, "list"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "CREATED", "CLIENTS"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["evt_new", "account.deleted"],
        ["evt_old", "account.updated"],
    ]
    assert lines[1].split()[-1] == "shop"
    assert main(["events", "--config", config, "list", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_events_list_says_when_there_is_nothing_yet(
    config: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["events", "--config", config, "list"]) == 0
    assert "No event was handed to webhooks yet" in capsys.readouterr().out


def test_events_resend_writes_a_new_outbox_entry_that_is_delivered_again(
    config: str,
    services: Services,
    receiver: Receiver,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture,
) -> None:
    handed_on(services, event("evt_1"))
    assert len(receiver.received) == 1

    assert main(["events", "--config", config, "resend", "evt_1"]) == 0

    said = capsys.readouterr().out
    [entry] = written(redis_of(services))
    assert entry.kind == "event"
    assert f"Resent evt_1 as outbox entry {entry.entry_id}" in said
    assert entry.body == event("evt_1")
    [delivery] = deliver_outbox(redis_of(services), services)
    assert delivery.outcomes == [Outcome.DELIVERED]
    assert delivery.entry.body["event"]["id"] == "evt_1"
    assert len(receiver.received) == 2


def test_events_resend_of_an_unknown_event_fails_and_writes_nothing(
    config: str, services: Services, capsys: pytest.CaptureFixture
) -> None:
    assert main(["events", "--config", config, "resend", "evt_missing"]) == 1

    assert "No event evt_missing in the log of recent events" in capsys.readouterr().err
    assert written(redis_of(services)) == []


def test_events_endpoints_shows_each_endpoints_events_state_and_last_delivery(
    config: str,
    services: Services,
    receiver: Receiver,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture,
) -> None:
    [endpoint] = services.webhook_deliveries.endpoints()
    assert main(["events", "--config", config, "endpoints"]) == 0
    before = capsys.readouterr().out
    assert f"{endpoint.endpoint_id}  client shop  {receiver.base}/hooks\n" in before
    assert "events:   account.deleted, account.updated" in before
    assert "state:    enabled" in before
    assert "last:     no delivery yet" in before
    assert "never-shown" not in before

    receiver.statuses["/hooks?key=never-shown"] = [410]
    handed_on(services, event("evt_gone"))
    assert main(["events", "--config", config, "endpoints"]) == 0

    after = capsys.readouterr().out
    assert "state:    disabled " in after
    assert ": HTTP 410: the receiver removed the endpoint" in after
    assert "last:     gone (HTTP 410: the receiver removed the endpoint) for evt_gone" in after


def test_events_endpoints_enable_clears_the_disabled_flag_once(
    config: str, services: Services, capsys: pytest.CaptureFixture
) -> None:
    [endpoint] = services.webhook_deliveries.endpoints()
    services.store.webhook_endpoints.disable(endpoint.endpoint_id, "HTTP 410")

    assert main(["events", "--config", config, "endpoints", "enable", endpoint.endpoint_id]) == 0
    assert f"Enabled {endpoint.endpoint_id}" in capsys.readouterr().out
    assert not services.store.webhook_endpoints.states([endpoint.endpoint_id])[
        endpoint.endpoint_id
    ].disabled
    assert main(["events", "--config", config, "endpoints", "enable", endpoint.endpoint_id]) == 0
    assert "was not disabled; nothing to do" in capsys.readouterr().out


def test_events_endpoints_enable_refuses_an_id_the_configuration_does_not_have(
    config: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["events", "--config", config, "endpoints", "enable", "we_unknown"]) == 1
    assert "No endpoint we_unknown in the configuration" in capsys.readouterr().err


def test_events_commands_need_the_servers_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "no-redis.toml"
    without_redis = CONFIG.split("[[clients.webhooks]]")[0].replace('redis_url = "{redis_url}"', "")
    path.write_text(without_redis)

    assert main(["events", "--config", str(path), "list"]) == 1
    assert "No REDIS_URL" in capsys.readouterr().err
