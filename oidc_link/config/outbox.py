"""The ``[outbox]`` table: whether this instance relays and delivers the outbox's entries
(oidc_link/outbox/), and the timings of its relay, its workers and their retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader

_WHOLE_SECONDS = ("claim_timeout", "max_age", "backoff_base", "backoff_cap", "lease")
_COUNTS = ("threads", "batch")


@dataclass(frozen=True)
class OutboxSettings:
    """``[outbox]``; docs/operations.md "The outbox" says what each part does."""

    # Every instance relays and delivers (each worker process runs the threads); false
    # leaves it to the other instances: entries wait, none is lost.
    deliver: bool = True
    # Seconds between two passes of the relay (and the longest a worker waits for a new
    # entry before it looks again).
    poll_interval: float = 1.0
    # Delivery threads per worker process: each holds one attempt at a time.
    threads: int = 2
    # Aggregates' streams the relay looks at per pass, and due retries it brings back.
    batch: int = 100
    # Seconds an entry may stay with a consumer before another takes it over (XAUTOCLAIM):
    # longer than any handler's own deadline, or a slow attempt would run twice.
    claim_timeout: int = 60
    # Seconds after an entry's first attempt that its retries stop (Stripe: 3 days).
    max_age: int = 3 * 24 * 3600
    # Exponential backoff with full jitter: attempt n waits up to base * 2**(n-1) seconds,
    # never more than cap.
    backoff_base: int = 60
    backoff_cap: int = 3600
    # Seconds a relay holds one aggregate's stream while moving its entries on.
    lease: int = 30


def read_outbox(reader: Reader, raw: Any) -> OutboxSettings:
    table = dict(reader.table(raw, "outbox"))
    defaults = OutboxSettings()
    reader.reject_unknown(table, "outbox.", set(defaults.__dataclass_fields__))
    whole = {
        name: reader.positive_int(table, name, f"outbox.{name}", getattr(defaults, name))
        for name in (*_WHOLE_SECONDS, *_COUNTS)
    }
    settings = OutboxSettings(
        deliver=reader.flag(table, "deliver", "outbox.deliver", defaults.deliver),
        poll_interval=reader.positive_number(
            table, "poll_interval", "outbox.poll_interval", defaults.poll_interval
        ),
        **whole,
    )
    if settings.backoff_cap < settings.backoff_base:
        reader.problem("outbox.backoff_cap", "must be at least outbox.backoff_base")
    if settings.poll_interval > 1.5:
        # A worker's blocking read waits this long, and Redis's socket timeout is 2 s.
        reader.problem("outbox.poll_interval", "must be at most 1.5 seconds")
    return settings
