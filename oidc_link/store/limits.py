"""Rate-limit counters in Redis: fixed windows, counted atomically; losing them only
forgives a few requests. Counts only: which limits apply is
interaction/rate_limits.py's business."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import COUNT_WITHIN_LIMITS, Aggregate, Outages


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events of ``kind`` per ``subject`` in a fixed ``window`` (seconds)."""

    kind: str
    subject: str
    window: int
    limit: int


class LimitStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._count_within_limits = client.register_script(COUNT_WITHIN_LIMITS)

    def count(self, kind: str, subject: str, window: int) -> int:
        """Count one event for ``subject`` in the current window and return the count."""
        key = keyspace.rate_counter(kind, subject, window, self._clock.now())
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.incr(key)
        pipeline.expire(key, keyspace.rate_counter_ttl(window))
        count, _ = pipeline.execute()
        return int(count)

    def first_reached(self, limits: Sequence[RateLimit]) -> RateLimit | None:
        """Count one event against each limit, in order, in one round trip; the first limit
        the event goes over, or None. The limits after that one are not counted: an event an
        earlier limit refused does not use up a later limit (a person over their own limit
        cannot spend a client's daily allowance). Same fixed windows as ``count``."""
        keys: list[str] = []
        args: list[int] = []
        now = self._clock.now()
        for limit in limits:
            keys.append(keyspace.rate_counter(limit.kind, limit.subject, limit.window, now))
            args += [keyspace.rate_counter_ttl(limit.window), limit.limit]
        reached = int(self._count_within_limits(keys=keys, args=args))
        return limits[reached - 1] if reached else None
