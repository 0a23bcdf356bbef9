"""A delivery worker: one consumer of the delivery stream's group. It takes over entries a
dead consumer held (XAUTOCLAIM), reads new ones (XREADGROUP), calls the handler of each
entry's kind and settles the outcome: acknowledged, or put off with backoff, or given up.

Retries use exponential backoff with full jitter (attempt n waits a random time up to
``backoff_base * 2**(n-1)``, at most ``backoff_cap``) until ``max_age`` after the first
attempt. An entry of a kind this instance has no handler for (one a newer version writes,
during a rolling upgrade) is put off without counting an attempt and never given up.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping

from oidc_link.clock import Clock
from oidc_link.config import OutboxSettings
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Handler, Outcome
from oidc_link.store import Store
from oidc_link.store.outbox_deliveries import Delivery

log = logging.getLogger(__name__)

# Entries a worker takes from the stream (or claims) at a time: each waits its turn behind
# the attempts before it, while it counts toward the claim timeout.
ENTRIES_AT_ONCE = 10
# An entry whose attempt never ended this many times (each consumer that took it died in
# the middle) is given up by the next consumer to claim it: it may be what kills them.
MAX_CLAIMS = 5
# How long to wait for an attempt's jitter: a number from 0 up to its argument.
Jitter = Callable[[float], float]


def full_jitter(ceiling: float) -> float:
    return random.uniform(0, ceiling)  # noqa: S311 - spreading retries, not a secret


class Worker:
    """One consumer (``consumer``: unique to this thread of this process of this host)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        handlers: Mapping[str, Handler],
        settings: OutboxSettings,
        consumer: str,
        metrics: Metrics,
        jitter: Jitter = full_jitter,
    ) -> None:
        self._store = store
        self._clock = clock
        self._handlers = dict(handlers)
        self._settings = settings
        self.consumer = consumer
        self._metrics = metrics
        self._jitter = jitter
        # Where the next XAUTOCLAIM looks from ("0-0": the start of the pending entries).
        self._claim_from = "0-0"
        # Kinds without a handler, each logged once per worker.
        self._unknown_kinds: set[str] = set()

    def run_once(self, block_ms: int = 0) -> int:
        """Take over what a dead consumer left or, when there is none, read new entries
        (waiting up to ``block_ms`` for one); attempt each; how many were attempted.

        A few at a time, and no more once they have been held for half the claim timeout
        (slow receivers): the rest would soon look abandoned and be attempted twice, so they
        are put back."""
        self._claim_from, taken = self._store.deliveries.claim(
            self.consumer, self._settings.claim_timeout * 1000, ENTRIES_AT_ONCE, self._claim_from
        )
        if taken:
            log.info(
                "Took over outbox deliveries another consumer held too long",
                extra={"event": "outbox.claimed", "count": len(taken)},
            )
            taken = self._without_crashers(taken)
        else:
            taken = self._store.deliveries.read(self.consumer, ENTRIES_AT_ONCE, block_ms)
        taken_at = self._clock.now()
        for attempted, (stream_id, delivery) in enumerate(taken):
            if self._clock.now() - taken_at > self._settings.claim_timeout / 2:
                self._put_back(taken[attempted:])
                return attempted
            self._attempt(stream_id, delivery)
        return len(taken)

    def _put_back(self, left: list[tuple[str, Delivery | None]]) -> None:
        """Entries held too long behind slow receivers to attempt now: back to the queue,
        due at once and no attempt counted, for any worker to take (the next relay pass
        brings them back), before they look abandoned and are claimed while still held."""
        log.info(
            "Outbox deliveries held too long behind slow receivers are put back",
            extra={"event": "outbox.put_back", "count": len(left)},
        )
        now = self._clock.now()
        for stream_id, delivery in left:
            if delivery is None:
                self._store.deliveries.finish(stream_id)
                continue
            again = Delivery(delivery.entry, delivery.attempt, now, delivery.first_attempt)
            self._store.deliveries.retry_later(stream_id, again)

    def _without_crashers(
        self, claimed: list[tuple[str, Delivery | None]]
    ) -> list[tuple[str, Delivery | None]]:
        """Give up the claimed entries whose attempt never ended MAX_CLAIMS times (XPENDING
        counts each time one was handed out: the read, then each claim, this one too); the
        others, to attempt."""
        counts = self._store.deliveries.times_delivered([stream_id for stream_id, _ in claimed])
        kept = []
        for stream_id, delivery in claimed:
            if delivery is not None and counts.get(stream_id, 0) > MAX_CLAIMS:
                self._give_up(delivery, "never finished")
                self._store.deliveries.finish(stream_id)
            else:
                kept.append((stream_id, delivery))
        return kept

    def _attempt(self, stream_id: str, delivery: Delivery | None) -> None:
        if delivery is None:
            self._store.deliveries.finish(stream_id)  # not a delivery: logged when read
            return
        handler = self._handlers.get(delivery.entry.kind)
        if handler is None:
            self._keep(stream_id, delivery)
            return
        started = self._clock.now()
        first_attempt = delivery.first_attempt or started
        outcome = self._outcome(handler, delivery)
        if outcome is Outcome.RETRY:
            due = started + self._delay(delivery.attempt)
            if due <= first_attempt + self._settings.max_age:
                next_attempt = Delivery(delivery.entry, delivery.attempt + 1, due, first_attempt)
                self._store.deliveries.retry_later(stream_id, next_attempt)
                return
            self._give_up(delivery, "too old")
        elif outcome is Outcome.GIVE_UP:
            self._give_up(delivery, "refused")
        self._store.deliveries.finish(stream_id)

    def _give_up(self, delivery: Delivery, reason: str) -> None:
        log.warning(
            "An outbox entry was given up undelivered",
            extra={
                "event": "outbox.given_up",
                "kind": delivery.entry.kind,
                "entry_id": delivery.entry.entry_id,
                "attempt": delivery.attempt,
                "reason": reason,
            },
        )
        self._metrics.outbox_given_up(delivery.entry.kind)

    def _outcome(self, handler: Handler, delivery: Delivery) -> Outcome:
        """The handler's answer; an exception counts as RETRY, logged without the entry's
        body (its type only: a message may quote the payload)."""
        try:
            outcome = handler(delivery.entry, delivery.attempt)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"a handler answered {type(outcome).__name__}, not an Outcome")
            return outcome
        except Exception as error:  # a kind's bug must not stop delivery
            log.error(
                "An outbox handler failed; the entry will be retried",
                extra={
                    "event": "outbox.handler_failed",
                    "kind": delivery.entry.kind,
                    "entry_id": delivery.entry.entry_id,
                    "attempt": delivery.attempt,
                    "error": type(error).__name__,
                },
            )
            return Outcome.RETRY

    def _delay(self, attempt: int) -> int:
        """Seconds until the attempt after ``attempt``: full jitter under the exponential
        ceiling, at least one second."""
        settings = self._settings
        ceiling = min(settings.backoff_cap, settings.backoff_base * 2 ** min(attempt - 1, 32))
        return max(1, round(self._jitter(ceiling)))

    def _keep(self, stream_id: str, delivery: Delivery) -> None:
        """No handler for the entry's kind here: put it off (the base delay, no attempt
        counted), for an instance that has one, and say so once per kind."""
        kind = delivery.entry.kind
        if kind not in self._unknown_kinds:
            self._unknown_kinds.add(kind)
            log.warning(
                "No handler for outbox entries of this kind here; they are kept for an "
                "instance that has one",
                extra={"event": "outbox.no_handler", "kind": kind},
            )
        due = self._clock.now() + self._settings.backoff_base
        later = Delivery(delivery.entry, delivery.attempt, due, delivery.first_attempt)
        self._store.deliveries.retry_later(stream_id, later)
