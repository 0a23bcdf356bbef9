"""An instance killed with SIGKILL in the middle of a delivery (issue 18 item 3): the entry
it held goes to another instance's consumer once the claim timeout passes (XAUTOCLAIM).
Real processes on a real redis-server: the dead one is tests/outbox_stuck_instance.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oidc_link.clock import SystemClock
from oidc_link.config import OutboxSettings
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Outcome
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.test_outbox_worker import nothing_left, write

ROOT = Path(__file__).resolve().parent.parent
# Generous: the limit of the wait on a loaded machine, not the wait.
LIMIT_SECONDS = 30


@pytest.fixture
def real_redis(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def lines_of(process: subprocess.Popen[str]) -> Iterator[str]:
    assert process.stdout is not None
    for line in process.stdout:
        yield line.strip()


def test_an_instance_killed_mid_delivery_leaves_the_entry_to_another(
    real_redis: redis.Redis, redis_server_url: str
) -> None:
    clock = SystemClock()
    store = Store(real_redis, clock)
    doomed = subprocess.Popen(
        [sys.executable, "-m", "tests.outbox_stuck_instance", redis_server_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        said = lines_of(doomed)
        assert next(said) == "started"
        entry = OutboxEntry("test", "evt_crash", {"type": "account.updated"})
        write(store, real_redis, entry, keyspace.account("acct_crash"))
        assert next(said) == "attempting evt_crash"  # its relay handed it on, its worker has it
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.wait(timeout=LIMIT_SECONDS) == -signal.SIGKILL
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        assert doomed.stdout is not None
        doomed.stdout.close()
    pending = real_redis.xpending(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)
    assert pending["pending"] == 1  # still with the dead consumer

    delivered: list[tuple[OutboxEntry, int]] = []
    done = threading.Event()

    def receiver(entry: OutboxEntry, attempt: int) -> Outcome:
        delivered.append((entry, attempt))
        done.set()
        return Outcome.DELIVERED

    survivor = OutboxRunner(
        store,
        clock,
        OutboxSettings(threads=1, poll_interval=0.2, claim_timeout=1),
        Metrics.standalone(),
        {"test": receiver},
        {},
    )
    survivor.start()
    try:
        assert done.wait(LIMIT_SECONDS)
    finally:
        survivor.stop()

    # The attempt the dead instance never finished is not counted: this is still attempt 1.
    assert delivered == [(entry, 1)]
    assert nothing_left(real_redis)
