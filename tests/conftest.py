"""Shared fixtures: a fixed clock, Redis (embedded, and real when a redis-server exists)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.store import Store

# CI sets this so that a missing redis-server fails the run instead of skipping tests.
REQUIRE_REAL_REDIS = os.environ.get("OIDC_LINK_TEST_REAL_REDIS") == "required"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A throwaway redis-server on a loopback port, for the whole test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_REAL_REDIS:
            pytest.fail("redis-server is required (OIDC_LINK_TEST_REAL_REDIS=required)")
        pytest.skip("redis-server is not installed; CI runs these against a real one")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["fakeredis", "redis-server"])
def redis_client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The same tests run on the embedded fakeredis and on a real redis-server."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(decode_responses=True)
        return
    client = redis.Redis.from_url(
        request.getfixturevalue("redis_server_url"), decode_responses=True
    )
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def embedded_redis() -> redis.Redis:
    """Embedded Redis only, for tests that are about behaviour rather than storage."""
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store(redis_client: redis.Redis, clock: FixedClock) -> Store:
    return Store(redis_client, clock)
