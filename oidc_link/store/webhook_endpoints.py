"""Webhook endpoints' state in Redis, by endpoint id: whether one is disabled (when, why) and
how its last delivery attempt went; and the capped log of the events handed to webhook
delivery, which ``oidc-link events`` lists and resends from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.ids import new_id
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate, Outages
from oidc_link.store.outbox import OutboxEntry, OutboxStore

# How many events the log keeps (about: trimmed with MAXLEN ~, which Redis does cheaply).
# The events' own store keeps them 30 days; this is the operator's recent view.
EVENT_LOG_LENGTH = 1000
# The outbox kind of an event (written with each change by the events' store; a resend
# writes one too).
EVENT = "event"


@dataclass(frozen=True)
class EndpointState:
    """What Redis knows of one endpoint; an endpoint never disabled nor tried has nothing."""

    disabled_at: int | None = None
    disabled_reason: str | None = None
    last_event_id: str | None = None
    last_outcome: str | None = None
    last_reason: str | None = None
    last_at: int | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> EndpointState:
        def number(name: str) -> int | None:
            return int(fields[name]) if name in fields else None

        return cls(
            disabled_at=number("disabled_at"),
            disabled_reason=fields.get("disabled_reason"),
            last_event_id=fields.get("last_event_id"),
            last_outcome=fields.get("last_outcome"),
            last_reason=fields.get("last_reason"),
            last_at=number("last_at"),
        )


class WebhookEndpointStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._outbox = OutboxStore(client, clock, outages)

    # Endpoints.

    def disable(self, endpoint_id: str, reason: str) -> None:
        """Disable an endpoint until an operator enables it (durable: no TTL)."""
        self._redis.hset(
            keyspace.webhook_endpoint(endpoint_id),
            mapping={"disabled_at": self._clock.now(), "disabled_reason": reason},
        )

    def enable(self, endpoint_id: str) -> bool:
        """Clear the disabled flag; False when the endpoint was not disabled."""
        key = keyspace.webhook_endpoint(endpoint_id)
        return bool(self._redis.hdel(key, "disabled_at", "disabled_reason"))

    def states(self, endpoint_ids: list[str]) -> dict[str, EndpointState]:
        """Each endpoint's state, in one round trip."""
        if not endpoint_ids:
            return {}
        pipeline = self._redis.pipeline(transaction=False)
        for endpoint_id in endpoint_ids:
            pipeline.hgetall(keyspace.webhook_endpoint(endpoint_id))
        answers = pipeline.execute()
        return {
            endpoint_id: EndpointState.from_hash(_texts(fields))
            for endpoint_id, fields in zip(endpoint_ids, answers, strict=True)
        }

    def note_attempt(self, endpoint_id: str, event_id: str, outcome: str, reason: str) -> None:
        """How the endpoint's latest attempt ended (``reason``: a few words, never the
        payload, a secret or the URL's query)."""
        self._redis.hset(
            keyspace.webhook_endpoint(endpoint_id),
            mapping={
                "last_event_id": event_id,
                "last_outcome": outcome,
                "last_reason": reason,
                "last_at": self._clock.now(),
            },
        )

    # The log of events handed to webhook delivery.

    def log_event(self, event: dict[str, Any]) -> None:
        """Keep ``event`` (the outbox entry's whole body) among the recent ones."""
        body = json.dumps(event, separators=(",", ":"), sort_keys=True)
        self._redis.xadd(
            keyspace.WEBHOOK_EVENTS,
            {"id": event["id"], "body": body},
            maxlen=EVENT_LOG_LENGTH,
            approximate=True,
        )

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` events logged, newest first."""
        entries = self._redis.xrevrange(keyspace.WEBHOOK_EVENTS, count=limit)
        return [json.loads(_texts(fields)["body"]) for _, fields in entries]

    def logged_event(self, event_id: str) -> dict[str, Any] | None:
        """The event with this id, if the log still holds it (its latest copy)."""
        for _, fields in self._redis.xrevrange(keyspace.WEBHOOK_EVENTS):
            text = _texts(fields)
            if text["id"] == event_id:
                return json.loads(text["body"])
        return None

    def resend(self, event: dict[str, Any]) -> str:
        """Write ``event`` to the outbox again, as a new entry (its id is returned), so that
        it is fanned out to the endpoints subscribed to it now and delivered once more."""
        entry = OutboxEntry(EVENT, new_id("resend"), event)
        stream = self._outbox.announce(keyspace.WEBHOOK_EVENTS)
        self._redis.xadd(stream, entry.fields())
        return entry.entry_id


def _texts(fields: dict[Any, Any]) -> dict[str, str]:
    return {
        (name.decode() if isinstance(name, bytes) else name): (
            value.decode() if isinstance(value, bytes) else value
        )
        for name, value in fields.items()
    }
