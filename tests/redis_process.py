"""A redis-server of a test's own, which the test may stop and start again on the same port
to play an outage (conftest's session-wide server must stay up for every other test)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import REQUIRE_REAL_REDIS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """One redis-server on a loopback port. It writes every command to an append-only file
    in ``data_dir`` before answering, so that what was stored survives stop() and start()
    the way a production Redis with persistence does."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._binary = binary
        self._data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self._data_dir),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # No retries of its own: this loop is the retry.
        client = redis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Kill the server outright, as a crash or a lost network would look to clients."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


@contextmanager
def stoppable_redis(data_dir: Path) -> Iterator[RedisProcess]:
    """A running RedisProcess, stopped at the end; skips (or, in CI, fails) without a
    redis-server, as conftest's redis_server_url does."""
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_REAL_REDIS:
            pytest.fail("redis-server is required (OIDC_LINK_TEST_REAL_REDIS=required)")
        pytest.skip("redis-server is not installed; CI runs these against a real one")
    process = RedisProcess(binary, data_dir)
    process.start()
    try:
        yield process
    finally:
        process.stop()
