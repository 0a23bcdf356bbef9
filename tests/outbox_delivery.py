"""What the outbox's kinds are tested with: the entries written to every announced stream,
and a small stand-in for the outbox's worker that fans each out by its kind and calls the
kind's handler at once, again while it answers RETRY (no backoff, no consumer group: the
worker's own tests cover those). It uses the kinds exactly as services.py hands them over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from oidc_link.outbox.handling import FanOut, Handler, Outcome
from oidc_link.services import Services
from oidc_link.store import keyspace
from oidc_link.store.outbox import OutboxEntry


@dataclass
class Delivery:
    """One entry to deliver (after its fan-out) and how each attempt at it ended."""

    entry: OutboxEntry
    outcomes: list[Outcome] = field(default_factory=list)


def written(redis_client: redis.Redis, kind: str | None = None) -> list[OutboxEntry]:
    """Every entry (of ``kind``, when given) in every announced stream, stream by stream,
    oldest first. A first sign-in also writes its account's ``account.created`` event."""
    return [entry for _, _, entry in _stored(redis_client) if kind in (None, entry.kind)]


def deliver_outbox(
    redis_client: redis.Redis, services: Services, *, attempts: int = 5
) -> list[Delivery]:
    """Take every stored entry off its stream, fan it out and deliver each result, up to
    ``attempts`` times while the handler answers RETRY."""
    fan_outs: dict[str, FanOut] = services.outbox_fan_outs()
    handlers: dict[str, Handler] = services.outbox_handlers()
    deliveries = []
    for stream, stream_id, entry in _stored(redis_client):
        redis_client.xdel(stream, stream_id)
        fan_out = fan_outs.get(entry.kind)
        for item in fan_out(entry) if fan_out else [entry]:
            delivery = Delivery(item)
            for attempt in range(1, attempts + 1):
                delivery.outcomes.append(handlers[item.kind](item, attempt))
                if delivery.outcomes[-1] is not Outcome.RETRY:
                    break
            deliveries.append(delivery)
    return deliveries


def _stored(redis_client: redis.Redis) -> list[tuple[str, Any, OutboxEntry]]:
    found = []
    for stream in redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1):
        for stream_id, fields in redis_client.xrange(stream):
            found.append((stream, stream_id, OutboxEntry.from_fields(fields)))
    return found
