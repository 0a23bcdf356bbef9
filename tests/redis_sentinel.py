"""A Sentinel-run Redis of the tests' own: a primary, one replica and three Sentinels (quorum
two) on loopback ports, every one a ``redis-server`` (Sentinel is its ``--sentinel`` mode),
without persistence; the data servers take a password, as production's do. conftest.py
decides when to start the session's; a failover test starts one of its own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_cluster import NodeExitedError, free_ports

SERVICE = "oidc-link"
# The data servers' requirepass and masterauth (the URL carries it, as an operator's does).
PASSWORD = "sentinel-data-password-0123"
SENTINELS = 3
# How long a primary may go unanswered before a Sentinel calls it down. Well above what a
# shared, loaded machine may stall a process for, so that the session's primary never fails
# over in the middle of other tests; a failover test passes a short one.
DOWN_AFTER_MS = 10_000
# Starting five servers and letting the Sentinels find the replica and each other takes a
# few seconds (they greet each other every 2 s); this is the limit, not the wait.
START_SECONDS = 30
# Free ports are found by binding and letting go; another process may take one first.
ATTEMPTS = 3


@dataclass(frozen=True)
class RunningSentinels:
    """Where the data servers and the Sentinels listen, and their processes (a test may kill
    one). ``url`` names two of the three Sentinels, as an operator would name a few."""

    servers: dict[int, subprocess.Popen[bytes]]
    sentinels: dict[int, subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        first, second = list(self.sentinels)[:2]
        return f"redis+sentinel://:{PASSWORD}@127.0.0.1:{first},127.0.0.1:{second}/{SERVICE}/0"

    def node(self, port: int) -> redis.Redis:
        """A plain client of one data server, for checks the app's client would not make."""
        return redis.Redis(
            "127.0.0.1", port, password=PASSWORD, decode_responses=True, retry=Retry(NoBackoff(), 0)
        )

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, decode_responses=True, retry=Retry(NoBackoff(), 0))

    def primary_port(self) -> int:
        """The primary's port, as the first Sentinel that runs names it."""
        for port, process in self.sentinels.items():
            if process.poll() is None:
                return self.primary_port_named_by(port)
        raise RuntimeError("no Sentinel is running")

    def primary_port_named_by(self, sentinel_port: int) -> int:
        with self.sentinel(sentinel_port) as sentinel:
            _, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def replica_port(self) -> int:
        """The other data server: the primary's replica until a failover swaps them."""
        primary = self.primary_port()
        return next(port for port in self.servers if port != primary)

    def role(self, port: int) -> str | None:
        """``master`` or ``slave`` as the server says, or None when it does not answer."""
        with self.node(port) as node:
            try:
                return str(node.info("replication")["role"])
            except redis.ConnectionError:
                return None

    def kill(self, port: int) -> None:
        """Kill one process outright, as a crash or a lost machine would look to the rest."""
        process = self.servers.get(port) or self.sentinels[port]
        process.kill()
        process.wait(timeout=10)

    def replicated(self) -> None:
        """Wait until the replica has every write the primary has taken so far (its offset
        has reached the primary's): what was written before survives a failover."""
        with self.node(self.primary_port()) as primary:
            offset = int(primary.info("replication")["master_repl_offset"])

        def caught_up() -> bool:
            with self.node(self.replica_port()) as replica:
                info = replica.info("replication")
            return info.get("master_link_status") == "up" and (
                int(info["slave_repl_offset"]) >= offset
            )

        wait_until(caught_up, START_SECONDS, "the replica has every write so far")


@contextmanager
def running_sentinels(
    server: str, directory: Path, down_after_ms: int = DOWN_AFTER_MS
) -> Iterator[RunningSentinels]:
    """Start the primary, its replica and the Sentinels, wait until every Sentinel knows the
    replica and the other Sentinels, and kill them all when the block ends (also when
    starting failed half-way)."""
    for attempt in range(1, ATTEMPTS + 1):
        with ExitStack() as stack:
            try:
                where = directory / f"attempt-{attempt}"
                running = _start(stack, server, where, down_after_ms)
            except NodeExitedError:
                if attempt == ATTEMPTS:
                    raise
                continue
            yield running
            return


def _start(stack: ExitStack, server: str, directory: Path, down_after_ms: int) -> RunningSentinels:
    primary, replica, *sentinel_ports = free_ports(2 + SENTINELS)
    servers = {
        primary: _process(stack, [server, *_data_server(primary, directory / "primary")]),
        replica: _process(
            stack,
            [
                server,
                *_data_server(replica, directory / "replica"),
                "--replicaof", "127.0.0.1", str(primary),
            ],
        ),
    }  # fmt: skip
    running = RunningSentinels(servers, {})
    _wait_for(
        servers[replica],
        lambda: running.node(replica).info("replication").get("master_link_status") == "up",
        "the replica syncs with the primary",
    )
    for port in sentinel_ports:
        # Each Sentinel rewrites its configuration file as it learns: one file each.
        configuration = directory / f"sentinel-{port}" / "sentinel.conf"
        configuration.parent.mkdir(parents=True)
        configuration.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {configuration.parent}\n"
            f"logfile {configuration.parent / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {SENTINELS // 2 + 1}\n"
            f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        running.sentinels[port] = _process(stack, [server, str(configuration), "--sentinel"])
    for port, process in running.sentinels.items():
        _wait_for(process, lambda port=port: _knows_everyone(running, port), f"Sentinel {port}")
    return running


def _data_server(port: int, directory: Path) -> list[str]:
    directory.mkdir(parents=True)
    return [
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        "--save", "",
        "--appendonly", "no",
        "--requirepass", PASSWORD,
        "--masterauth", PASSWORD,
        # A replica's first sync starts at once instead of after the default 5 s.
        "--repl-diskless-sync-delay", "0",
    ]  # fmt: skip


def _process(stack: ExitStack, command: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        process.kill()
        process.wait(timeout=10)

    stack.callback(stop)
    return process


def _knows_everyone(running: RunningSentinels, port: int) -> bool:
    """The Sentinel monitors the primary, sees its replica in sync and knows the others (a
    failover needs the quorum to agree and a majority to elect a leader)."""
    with running.sentinel(port) as sentinel:
        master = sentinel.execute_command("SENTINEL", "MASTER", SERVICE)
        replicas = sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE)
    in_sync = [r for r in replicas if r.get("master-link-status") == "ok"]
    return int(master["num-other-sentinels"]) == SENTINELS - 1 and len(in_sync) == 1


def _wait_for(process: subprocess.Popen[bytes], condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition`` holds; NodeExitedError when the process exited meanwhile
    (a port taken by someone else, say), so that the start is tried again elsewhere."""

    def ready() -> bool:
        if process.poll() is not None:
            raise NodeExitedError(f"{what}: the process exited with {process.returncode}")
        try:
            return condition()
        except redis.ConnectionError:
            return False

    wait_until(ready, START_SECONDS, what)


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (answer := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {seconds} s: {what}")
        time.sleep(0.05)
    return answer
