"""The SDK's ``client.events`` (issue 18 item 1) against a real server: retrieve, list with
its filters, and auto-paging, as Stripe's SDKs read events."""

from __future__ import annotations

import time

import pytest
import redis

from oidc_link.client import InvalidRequestError, OidcLinkClient
from oidc_link.clock import SystemClock
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.live_server import LiveServer
from tests.test_client import OTHER_KEY, client, provider  # noqa: F401 - fixtures


def hand_on(redis_client: redis.Redis) -> None:
    """What the outbox's relay does with each event: save it for the list."""
    store = Store(redis_client, SystemClock())
    for stream in redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1):
        for _, fields in redis_client.xrange(stream):
            store.events.save(OutboxEntry.from_fields(fields).body)


def test_events_are_listed_filtered_paged_and_retrieved(
    client: OidcLinkClient,  # noqa: F811 - the fixture
    provider: LiveServer,  # noqa: F811 - the fixture
    redis_client: redis.Redis,
) -> None:
    account = client.accounts.create(type="custom", idempotency_key="one")
    client.accounts.update(account.id, metadata={"plan": "gold"})
    client.accounts.delete(account.id)
    hand_on(redis_client)

    listed = client.events.list(limit=2)
    walked = [event.type for event in listed.auto_paging_iter()]
    updated = client.events.list(type="account.updated")
    recent = client.events.list(created={"gte": int(time.time()) - 60})
    future = client.events.list(created={"gt": int(time.time()) + 60})

    assert listed.object == "list" and listed.url == "/v1/events" and listed.has_more is True
    assert sorted(walked) == ["account.created", "account.deleted", "account.updated"]
    [event] = updated.data
    assert event.data.previous_attributes == {"metadata": {"plan": None}}
    assert event.data.object.metadata == {"plan": "gold"}
    assert len(recent.data) == 3 and future.data == []
    created = client.events.list(type="account.created").data[0]
    assert created.request.idempotency_key == "one"
    assert client.events.retrieve(created.id) == created
    other = OidcLinkClient(OTHER_KEY, base_url=provider.url)
    with pytest.raises(InvalidRequestError):
        other.events.retrieve(created.id)
    with pytest.raises(ValueError, match="evt_"):
        client.events.retrieve("")
