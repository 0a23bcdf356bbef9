"""What a handler of one kind of outbox entry is, and what it may answer: the seam between
the worker (which retries, claims and acknowledges) and the kinds (events for webhooks,
back-channel logout notices), which only try once each time they are called."""

from __future__ import annotations

import enum
from collections.abc import Callable

from oidc_link.store.outbox import OutboxEntry


class Outcome(enum.Enum):
    """How one attempt ended: ``DELIVERED`` acknowledges the entry; ``RETRY`` asks the
    worker to try again after its backoff (until its 3 days are up); ``GIVE_UP`` ends it
    undelivered (a refusal that retrying cannot change, an endpoint gone)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"


# One attempt at one entry; ``attempt`` counts from 1. Must not raise for the receiver's
# failures (answer RETRY or GIVE_UP); an exception is treated as RETRY and logged.
Handler = Callable[[OutboxEntry, int], Outcome]

# Run once as an entry leaves its aggregate's stream: the entries to deliver in its place
# (an event becomes one delivery per webhook endpoint subscribed to it; an empty list when
# nobody is). Kinds without one are delivered as they are.
FanOut = Callable[[OutboxEntry], list[OutboxEntry]]
