"""An instance whose outbox handler never returns, in a process of its own: the one
tests/test_outbox_crash.py kills with SIGKILL in the middle of a delivery. Run as
``python -m tests.outbox_stuck_instance REDIS_URL``; prints ``attempting <id>`` when its
handler has an entry."""

from __future__ import annotations

import sys
import threading

import redis

from oidc_link.clock import SystemClock
from oidc_link.config import OutboxSettings
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Outcome
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.store import Store
from oidc_link.store.outbox import OutboxEntry


def main(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    clock = SystemClock()

    def stuck(entry: OutboxEntry, attempt: int) -> Outcome:
        print(f"attempting {entry.entry_id}", flush=True)
        threading.Event().wait()  # a receiver that never answers, and no deadline
        return Outcome.DELIVERED

    runner = OutboxRunner(
        Store(client, clock),
        clock,
        OutboxSettings(threads=1, poll_interval=0.2),
        Metrics.standalone(),
        {"test": stuck},
        {},
    )
    runner.start()
    print("started", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
