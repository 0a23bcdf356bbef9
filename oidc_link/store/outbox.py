"""The outbox's streams in Redis: one per aggregate (keyspace.outbox), each in the hash slot
of the key whose change it tells, so that the change and its entry are one script or MULTI
even on Redis Cluster; and the index of streams that may hold entries.

A writer first ``announce``s the stream (its own round trip, before the change: an entry is
then never in a stream the relay cannot find), then puts ``entry_fields`` in an XADD inside
the change's script or MULTI. Entries carry ids, never a secret. The relay (outbox/relay.py)
reads the index a page at a time, takes a stream's entries under a lease and forgets a
stream that stayed empty; outbox_deliveries.py holds them from there.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import RELEASE_LOCK, Aggregate, Outages

log = logging.getLogger(__name__)

# The index forgets a stream only if its announcement is still the one the relay read
# (ARGV[2]): a writer announcing it since has moved its score forward, and it stays.
FORGET_IF_UNCHANGED = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""
# A stream is deleted only while it is empty: an entry XADDed since stays where it is.
DELETE_IF_EMPTY = """
if redis.call('XLEN', KEYS[1]) == 0 then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class OutboxEntry:
    """One thing to tell: its ``kind`` chooses the handler (``event``: a platform's event;
    ``backchannel_logout``: a logout notice), ``entry_id`` is stable across retries (an
    event's ``evt_`` id), ``body`` is the kind's JSON object."""

    kind: str
    entry_id: str
    body: dict[str, Any]

    def fields(self) -> dict[str, str]:
        """The stream entry's fields, for an XADD (in Lua: ``XADD key * kind .. id .. body ..``)."""
        return {
            "kind": self.kind,
            "id": self.entry_id,
            "body": json.dumps(self.body, separators=(",", ":"), sort_keys=True),
        }

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> OutboxEntry:
        """Back from XRANGE/XREADGROUP fields (bytes or str, as the client answers)."""
        text = {_text(name): _text(value) for name, value in fields.items()}
        return cls(kind=text["kind"], entry_id=text["id"], body=json.loads(text["body"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class OutboxStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._release = client.register_script(RELEASE_LOCK)
        self._forget = client.register_script(FORGET_IF_UNCHANGED)
        self._delete_if_empty = client.register_script(DELETE_IF_EMPTY)

    def announce(self, aggregate_key: str) -> str:
        """Note that ``aggregate_key``'s stream is about to get an entry; returns the
        stream's name, for the change's script or MULTI. One round trip, before the
        change; announcing a stream twice only moves its time forward."""
        stream = keyspace.outbox(aggregate_key)
        self._redis.zadd(keyspace.OUTBOX_INDEX, {stream: self._clock.now()}, gt=True)
        return stream

    def announced(self, start: int, count: int) -> list[tuple[str, int]]:
        """A page of the index, oldest announcement first: each stream with the time it
        was last announced."""
        page = self._redis.zrange(keyspace.OUTBOX_INDEX, start, start + count - 1, withscores=True)
        return [(stream, int(score)) for stream, score in page]

    def sizes(self, streams: list[str]) -> list[int]:
        """How many entries each stream holds: one pipeline (a cluster client sends each
        node its part)."""
        if not streams:
            return []
        pipeline = self._redis.pipeline(transaction=False)
        for stream in streams:
            pipeline.xlen(stream)
        return [int(size) for size in pipeline.execute()]

    def lease(self, stream: str, holder: str, milliseconds: int) -> bool:
        """Take the right to move ``stream``'s entries on for a while; False when another
        relay holds it."""
        return bool(
            self._redis.set(keyspace.outbox_lease(stream), holder, nx=True, px=milliseconds)
        )

    def release(self, stream: str, holder: str) -> None:
        """Give the lease back, if ``holder`` still holds it (it may have run out and
        been taken by another relay, whose it then stays)."""
        self._release(keys=[keyspace.outbox_lease(stream)], args=[holder])

    def entries(self, stream: str, count: int) -> list[tuple[str, OutboxEntry | None]]:
        """The oldest ``count`` entries of ``stream``, in order, each with its stream id;
        None for an entry that is not an OutboxEntry (a writer's bug: logged, by id)."""
        found = []
        for entry_id, fields in self._redis.xrange(stream, count=count):
            try:
                found.append((entry_id, OutboxEntry.from_fields(fields)))
            except (KeyError, ValueError):
                log.error(
                    "An outbox entry that is not one was dropped",
                    extra={"event": "outbox.malformed_entry", "stream_entry": entry_id},
                )
                found.append((entry_id, None))
        return found

    def taken(self, stream: str, entry_ids: list[str]) -> None:
        """Delete entries that were handed on (after the hand-over succeeded: a crash in
        between hands them on twice, never loses them)."""
        if entry_ids:
            self._redis.xdel(stream, *entry_ids)

    def forget(self, stream: str, announced_at: int) -> bool:
        """Drop an empty stream from the index, if nobody announced it again since
        ``announced_at``, then delete it if still empty (two scripts: the index and the
        stream are on different slots). True when the index dropped it."""
        forgotten = self._forget(keys=[keyspace.OUTBOX_INDEX], args=[stream, announced_at])
        if forgotten:
            self._delete_if_empty(keys=[stream])
        return bool(forgotten)
