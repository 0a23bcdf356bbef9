"""The platform's events in Redis (issue 18 item 1): each event's record and its owner's
indexes by ``created``, for ``GET /v1/events``; kept 30 days (keyspace.EVENT_RETENTION).
Records are opaque JSON here apart from the fields that index them; the outbox, not this
module, is where an event is first written (with its change)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate


@dataclass(frozen=True)
class EventWindow:
    """Which of an owner's events a page is drawn from: one type or all, and ``created``
    between ``since`` and ``until`` (inclusive, unix seconds; None: unbounded)."""

    owner: str
    event_type: str | None = None
    since: int | None = None
    until: int | None = None


class EventStore(Aggregate):
    # The record and its two indexes are apart on a cluster (an index holds many events):
    # one plain pipeline, record first; a page reads the records of its members and leaves
    # out those gone (expired), so an index member without its record is never shown.

    def save(self, event: dict[str, Any]) -> bool:
        """Keep ``event`` (with ``id``, ``created``, ``type`` and ``owner``) until 30 days
        after it was created, and index it. Idempotent: saving it again (a relay that
        delivered twice) changes nothing. False when it was kept already or is too old."""
        now = self._clock.now()
        created = int(event["created"])
        ttl = created + keyspace.EVENT_RETENTION - now
        if ttl <= 0:
            return False
        event_id = str(event["id"])
        owner = str(event["owner"])
        expired = now - keyspace.EVENT_RETENTION  # created at or before: no longer kept
        pipeline = self._redis.pipeline(transaction=False)
        record = json.dumps(event, separators=(",", ":"), sort_keys=True)
        pipeline.set(keyspace.event(event_id), record, nx=True, ex=ttl)
        for index in (
            keyspace.events_of(owner),
            keyspace.events_of_type(owner, str(event["type"])),
        ):
            pipeline.zadd(index, {event_id: created}, nx=True)
            # Trimmed here rather than by a sweeper: each save drops what aged out.
            pipeline.zremrangebyscore(index, "-inf", expired)
            pipeline.expire(index, keyspace.EVENT_RETENTION)
        return bool(pipeline.execute()[0])

    def load(self, event_id: str) -> str | None:
        """The event's record while it is kept: by the clock, not only by Redis's TTL."""
        raw = self._redis.get(keyspace.event(event_id))
        if raw is None:
            return None
        created = int(json.loads(raw)["created"])
        return raw if created + keyspace.EVENT_RETENTION > self._clock.now() else None

    def page(
        self,
        window: EventWindow,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> tuple[list[str], bool] | None:
        """Up to ``limit`` event records of ``window``, newest first: right after
        ``starting_after``, or right before ``ending_before`` (the newer ones); and whether
        more follow in that direction. None when the cursor is not in the window's index."""
        key = (
            keyspace.events_of(window.owner)
            if window.event_type is None
            else keyspace.events_of_type(window.owner, window.event_type)
        )
        oldest = self._clock.now() - keyspace.EVENT_RETENTION + 1  # as ``load`` keeps them
        since = oldest if window.since is None else max(window.since, oldest)
        cursor = starting_after if starting_after is not None else ending_before
        # Ranks newest first: the window is the ranks from ``first`` (those newer than
        # ``until`` come before it) to ``last`` (those older than ``since`` after it).
        pipeline = self._redis.pipeline(transaction=False)
        pipeline.zcard(key)
        pipeline.zcount(key, "-inf", f"({since}")
        pipeline.zcount(key, "+inf" if window.until is None else f"({window.until}", "+inf")
        if cursor is not None:
            pipeline.zrevrank(key, cursor)
        size, older, newer, *rank = pipeline.execute()
        first, last = int(newer), int(size) - int(older) - 1
        if cursor is not None and rank[0] is None:
            return None
        if ending_before is not None:
            end = min(last, int(rank[0]) - 1)
            start = max(first, end + 1 - limit)
            more = start > first
        else:
            start = first if not rank else max(first, int(rank[0]) + 1)
            end = min(last, start + limit - 1)
            more = end < last
        if end < start:
            return [], False
        ids = self._redis.zrevrange(key, start, end)
        records = self._gets([keyspace.event(event_id) for event_id in ids])
        return [record for record in records if record], more
