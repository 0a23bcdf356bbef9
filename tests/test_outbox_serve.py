"""``oidc-link serve`` runs the outbox in every worker process (issue 18 item 3): each one's
delivery threads join the consumer group, an entry written to an aggregate's stream is
relayed, and SIGTERM still ends the server with 0. A real granian server on a real
redis-server, as tests/test_serve.py runs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from oidc_link.clock import SystemClock
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.fake_link_server import FakeLinkServer
from tests.redis_process import RedisProcess, stoppable_redis
from tests.test_outbox_worker import write
from tests.test_serve import free_port, live_config, serve

LIMIT_SECONDS = 30


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    data = tmp_path / "redis"
    data.mkdir()
    with stoppable_redis(data) as process:
        yield process


def wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + LIMIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {LIMIT_SECONDS} s: {what}")
        time.sleep(0.1)


def test_every_worker_process_of_serve_relays_and_delivers(
    tmp_path: Path, redis_server: RedisProcess, fake_link: FakeLinkServer
) -> None:
    served = serve(tmp_path, live_config(free_port(), redis_server.url, fake_link))
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        workers = set(served.workers())
        assert len(workers) == 2
        wait_for(
            lambda: served.output().count('"event":"outbox.started"') == 2,
            "each worker process starts its outbox threads",
        )
        entry = OutboxEntry("test", "evt_served", {"type": "account.updated"})
        write(Store(client, SystemClock()), client, entry, keyspace.account("acct_served"))
        # Relayed and read; no handler knows kind "test": kept for one that does, said once.
        wait_for(lambda: client.zcard(keyspace.OUTBOX_RETRIES) == 1, "the entry is kept")
        assert client.xlen(keyspace.outbox(keyspace.account("acct_served"))) == 0
        wait_for(lambda: "outbox.no_handler" in served.output(), "the log says why")
        # The consumer that read it: a delivery thread of one of the worker processes
        # (named <host>-<pid>-<random>-<thread>; the host may hold dashes of its own).
        consumers = client.xinfo_consumers(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)
        assert {int(c["name"].split("-")[-3]) for c in consumers} <= workers
    finally:
        code = served.stop()
        client.close()
    assert code == 0
    assert "Traceback" not in served.output()
