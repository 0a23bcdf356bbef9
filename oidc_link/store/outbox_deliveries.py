"""Entries on their way out: the delivery stream that every instance's workers read as one
consumer group, and the set of entries waiting for their next attempt; both in one slot
({deliveries}), so that one script moves an entry from one to the other.

Each delivery carries its attempt number, when it was first attempted and when it became
due, in fields beside the OutboxEntry's three; an entry leaves only by being acknowledged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate, Outages
from oidc_link.store.outbox import OutboxEntry

log = logging.getLogger(__name__)

# Acknowledge an entry (ARGV[1]) and delete it from the delivery stream: the stream then
# holds only what is undelivered, so its first entry is the oldest waiting.
FINISH = """
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
return redis.call('XDEL', KEYS[1], ARGV[1])
"""
# Put an entry off: its next attempt (ARGV[4], the delivery's fields as JSON) joins the
# retry set KEYS[2] at its due time ARGV[3], and the attempt that failed (ARGV[1]) leaves
# the stream, in one step: never in both, never in neither.
RETRY_LATER = """
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
return redis.call('XDEL', KEYS[1], ARGV[1])
"""
# Move up to ARGV[2] retries due by ARGV[1] back into the delivery stream, oldest due first,
# each as one XADD of its fields; how many moved.
PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local fields = {}
  for name, value in pairs(cjson.decode(member)) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  redis.call('XADD', KEYS[1], '*', unpack(fields))
  redis.call('ZREM', KEYS[2], member)
end
return #due
"""


@dataclass(frozen=True)
class Delivery:
    """One attempt to come at one entry: ``attempt`` counts from 1; ``first_attempt`` is
    when attempt 1 ran (None before it has); ``due`` is when this attempt became due (the
    lag gauge's measure of how long it has waited)."""

    entry: OutboxEntry
    attempt: int
    due: int
    first_attempt: int | None = None

    def fields(self) -> dict[str, str]:
        return {
            **self.entry.fields(),
            "attempt": str(self.attempt),
            "due": str(self.due),
            "first_attempt": "" if self.first_attempt is None else str(self.first_attempt),
        }

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> Delivery:
        first = fields.get("first_attempt") or ""
        return cls(
            entry=OutboxEntry.from_fields(fields),
            attempt=int(fields.get("attempt") or 1),
            due=int(fields.get("due") or 0),
            first_attempt=int(first) if first else None,
        )


@dataclass(frozen=True)
class Backlog:
    """What the lag gauge reads: the oldest undelivered entry's due time in the stream
    (pending or not yet read), the earliest retry's, and how many entries are where."""

    oldest_due: int | None
    earliest_retry: int | None
    in_stream: int
    in_flight: int
    retrying: int


def _parsed(stream_id: str, fields: dict[str, str]) -> Delivery | None:
    try:
        return Delivery.from_fields(fields)
    except (KeyError, ValueError):
        log.error(
            "An outbox delivery that is not one was found",
            extra={"event": "outbox.malformed_delivery", "stream_entry": stream_id},
        )
        return None


class DeliveryStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._finish = client.register_script(FINISH)
        self._retry_later = client.register_script(RETRY_LATER)
        self._promote_due = client.register_script(PROMOTE_DUE)

    def create_group(self) -> None:
        """The consumer group (and the stream, if none), reading from the stream's start; an
        existing group stays as it is."""
        try:
            self._redis.xgroup_create(
                keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP, id="0", mkstream=True
            )
        except redis.ResponseError as error:
            if not str(error).startswith("BUSYGROUP"):
                raise

    def add(self, deliveries: list[Delivery]) -> None:
        """Append deliveries to the stream, all or none (one MULTI on one slot)."""
        if not deliveries:
            return
        with self._redis.pipeline(transaction=True) as pipeline:
            for delivery in deliveries:
                pipeline.xadd(keyspace.OUTBOX_DELIVERIES, delivery.fields())
            pipeline.execute()

    def read(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Delivery | None]]:
        """New entries for ``consumer`` (waiting up to ``block_ms`` for one); None for one
        that is not a delivery (logged; the caller finishes it). A group gone with its
        stream (a flushed or replaced Redis) is made again, and nothing read."""
        try:
            answer = self._redis.xreadgroup(
                keyspace.OUTBOX_GROUP,
                consumer,
                {keyspace.OUTBOX_DELIVERIES: ">"},
                count=count,
                # BLOCK 0 would wait for ever: no wait at all is no BLOCK.
                block=block_ms or None,
            )
        except redis.ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                raise
            self.create_group()
            return []
        return [
            (stream_id, _parsed(stream_id, fields))
            for _, entries in answer or []
            for stream_id, fields in entries
        ]

    def claim(
        self, consumer: str, min_idle_ms: int, count: int, start: str = "0-0"
    ) -> tuple[str, list[tuple[str, Delivery | None]]]:
        """Take over entries another consumer has held for ``min_idle_ms`` (a dead instance's):
        the cursor to continue from ("0-0": the end was reached), and what was claimed."""
        try:
            answer = self._redis.xautoclaim(
                keyspace.OUTBOX_DELIVERIES,
                keyspace.OUTBOX_GROUP,
                consumer,
                min_idle_ms,
                start_id=start,
                count=count,
            )
        except redis.ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                raise
            self.create_group()
            return "0-0", []
        cursor, claimed = answer[0], answer[1]
        # Entries deleted while pending come back as None (Redis 6.2) or are left out (7).
        return cursor, [
            (stream_id, _parsed(stream_id, fields)) for stream_id, fields in claimed if fields
        ]

    def times_delivered(self, stream_ids: list[str]) -> dict[str, int]:
        """How many times each pending entry was handed to a consumer (read, then each
        claim): one XPENDING over their range."""
        if not stream_ids:
            return {}
        ordered = sorted(stream_ids, key=lambda stream_id: tuple(map(int, stream_id.split("-"))))
        pending = self._redis.xpending_range(
            keyspace.OUTBOX_DELIVERIES,
            keyspace.OUTBOX_GROUP,
            min=ordered[0],
            max=ordered[-1],
            count=len(ordered) + 100,  # others' pending entries may lie between
        )
        wanted = set(stream_ids)
        return {
            entry["message_id"]: int(entry["times_delivered"])
            for entry in pending
            if entry["message_id"] in wanted
        }

    def finish(self, stream_id: str) -> None:
        """Acknowledge and delete a delivered (or given up) entry."""
        self._finish(keys=[keyspace.OUTBOX_DELIVERIES], args=[stream_id, keyspace.OUTBOX_GROUP])

    def retry_later(self, stream_id: str, next_attempt: Delivery) -> None:
        """Swap the entry for its next attempt, due at ``next_attempt.due``: one script."""
        member = json.dumps(next_attempt.fields(), separators=(",", ":"), sort_keys=True)
        self._retry_later(
            keys=[keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_RETRIES],
            args=[stream_id, keyspace.OUTBOX_GROUP, next_attempt.due, member],
        )

    def promote_due(self, limit: int) -> int:
        """Move retries due by now back into the stream (up to ``limit``); how many."""
        return int(
            self._promote_due(
                keys=[keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_RETRIES],
                args=[self._clock.now(), limit],
            )
        )

    def forget_idle_consumers(self, idle_ms: int) -> list[str]:
        """Drop from the group the consumers idle that long with nothing pending (those of
        processes gone since); a live one dropped comes back with its next read."""
        try:
            consumers = self._redis.xinfo_consumers(
                keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP
            )
        except redis.ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                raise
            return []
        idle = [
            consumer["name"]
            for consumer in consumers
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) >= idle_ms
        ]
        if idle:
            pipeline = self._redis.pipeline(transaction=False)
            for name in idle:
                pipeline.xgroup_delconsumer(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP, name)
            pipeline.execute()
        return idle

    def backlog(self) -> Backlog:
        """The gauges' reading: one pipeline on the deliveries' slot."""
        pipeline = self._redis.pipeline(transaction=False)
        pipeline.xrange(keyspace.OUTBOX_DELIVERIES, count=1)
        pipeline.zrange(keyspace.OUTBOX_RETRIES, 0, 0, withscores=True)
        pipeline.xlen(keyspace.OUTBOX_DELIVERIES)
        pipeline.zcard(keyspace.OUTBOX_RETRIES)
        pipeline.xpending(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)
        oldest, earliest, length, retrying, pending = pipeline.execute(raise_on_error=False)
        if isinstance(pending, redis.ResponseError):
            pending = {"pending": 0}  # no group yet
        for answer in (oldest, earliest, length, retrying):
            if isinstance(answer, Exception):
                raise answer
        return Backlog(
            oldest_due=int(oldest[0][1].get("due") or 0) if oldest else None,
            earliest_retry=int(earliest[0][1]) if earliest else None,
            in_stream=int(length),
            in_flight=int(pending["pending"]),
            retrying=int(retrying),
        )
