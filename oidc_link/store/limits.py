"""Rate-limit counters in Redis: fixed windows, counted atomically; losing them only
forgives a few requests. Counts only: which limits apply is
interaction/rate_limits.py's business."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import COUNT_WITHIN_LIMITS, REFUND_COUNT, Aggregate, Outages


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events of ``kind`` per ``subject`` in a fixed ``window`` (seconds)."""

    kind: str
    subject: str
    window: int
    limit: int


class Counting:
    """One event counted against ``limits`` (as ``first_reached``) in a round trip that
    another step sends (a store.flows.Rider); ``reached`` once it was answered.

    One script per run of limits on one subject (their counters share a hash slot; a
    cluster runs each where its slot lives), all in the one round trip. A later subject's
    script runs even when an earlier subject's limit was reached: what it counted is taken
    back then (a round trip more, on a refusal only), so that, as in one script, an event an
    earlier limit refused uses up no later limit."""

    def __init__(self, store: LimitStore, limits: Sequence[RateLimit], now: int) -> None:
        self._store = store
        self.limits = list(limits)
        self.keys = [
            keyspace.rate_counter(limit.kind, limit.subject, limit.window, now)
            for limit in self.limits
        ]
        self._args: list[int] = []
        for limit in self.limits:
            self._args += [keyspace.rate_counter_ttl(limit.window), limit.limit]
        # Where each subject's run of limits starts and ends in ``limits``.
        self._runs: list[tuple[int, int]] = []
        for index, limit in enumerate(self.limits):
            if self._runs and self.limits[index - 1].subject == limit.subject:
                self._runs[-1] = (self._runs[-1][0], index + 1)
            else:
                self._runs.append((index, index + 1))
        self.reached: RateLimit | None = None

    def queue(self, pipeline: Any) -> int:
        # EVALSHA by hand: a Script in a pipeline would first ask SCRIPT EXISTS, a round trip;
        # and queued as redis-py's ``evalsha`` queues it, without its two calls on the way.
        sha = self._store._count.sha
        for start, end in self._runs:
            keys, args = self.keys[start:end], self._args[2 * start : 2 * end]
            pipeline.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        return len(self._runs)

    def answer(self, results: list[Any]) -> None:
        counted_after: list[str] = []
        for (start, end), position in zip(self._runs, results, strict=True):
            if isinstance(position, redis.exceptions.NoScriptError):
                # Not run (a new or restarted server): runs now, loading the script first.
                position = self._store._count(
                    keys=self.keys[start:end], args=self._args[2 * start : 2 * end]
                )
            elif isinstance(position, Exception):
                raise position
            if self.reached is not None:
                counted_after += self.keys[start : start + (int(position) or end - start)]
            elif int(position):
                self.reached = self.limits[start + int(position) - 1]
        for key in counted_after:
            self._store._refund(keys=[key])


class Refund:
    """Take back the event a Counting counted (each counter it reached), in a round trip
    that another step sends (a store.flows.Rider)."""

    def __init__(self, store: LimitStore, counting: Counting) -> None:
        self._store = store
        reached = counting.reached
        counted = counting.limits.index(reached) + 1 if reached else len(counting.keys)
        self.keys = counting.keys[:counted]

    def queue(self, pipeline: Any) -> int:
        sha = self._store._refund.sha
        for key in self.keys:
            pipeline.execute_command("EVALSHA", sha, 1, key)
        return len(self.keys)

    def answer(self, results: list[Any]) -> None:
        for key, result in zip(self.keys, results, strict=True):
            if isinstance(result, redis.exceptions.NoScriptError):
                self._store._refund(keys=[key])
            elif isinstance(result, Exception):
                raise result


class LimitStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._count_within_limits = client.register_script(COUNT_WITHIN_LIMITS)
        # For Counting and Refund, which other stores' round trips carry.
        self._count = self._count_within_limits
        self._refund = client.register_script(REFUND_COUNT)

    def counting(self, limits: Sequence[RateLimit]) -> Counting:
        """One event to count against ``limits`` in another step's round trip."""
        return Counting(self, limits, self._clock.now())

    def refund(self, counting: Counting) -> Refund:
        """The event ``counting`` counted, to take back in another step's round trip."""
        return Refund(self, counting)

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
        counting = self.counting(limits)
        pipeline = self._redis.pipeline(transaction=False)
        counting.queue(pipeline)
        counting.answer(pipeline.execute(raise_on_error=False))
        return counting.reached
