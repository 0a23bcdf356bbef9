"""A Redis Cluster of the tests' own: three primaries and three replicas on loopback ports,
started from ``redis-server --cluster-enabled yes`` and joined by ``redis-cli --cluster
create``, without persistence; plain, or TLS only (clients, replication and the cluster bus).
conftest.py decides when to start the session's (once per session)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PRIMARIES = 3
REPLICAS_PER_PRIMARY = 1
SLOTS = 16384
# How long a node may go unanswered before the others call it failed. Below the default
# 15 s so that a failover test need not wait long, above what a shared, loaded test machine
# may stall a process for, which would fail a primary over in the middle of other tests.
NODE_TIMEOUT_MS = 5000
# Starting six servers and joining them takes a few seconds; this is the limit, not the wait.
START_SECONDS = 30
# Free ports are found by binding and letting go, so another process on the machine may take
# one before its node does: the node exits, and the cluster starts again on other ports.
ATTEMPTS = 3


class NodeExitedError(RuntimeError):
    """A node's redis-server exited while the cluster was starting (its log says why)."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (all held until all are found)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class NodeTls:
    """A TLS-only cluster's files: the CA, and the certificate its nodes present to clients
    and to each other (which the tests' own clients present too)."""

    ca: Path
    cert: Path
    key: Path

    def client_options(self) -> dict[str, str | bool]:
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.cert),
            "ssl_keyfile": str(self.key),
        }


@dataclass(frozen=True)
class RunningCluster:
    """Where the cluster's nodes listen, and their processes (a test may kill one); ``url``
    names two of them, as an operator would name a few seed nodes rather than all."""

    processes: dict[int, subprocess.Popen[bytes]]
    tls: NodeTls | None = None
    # Every node's ``requirepass`` (and ``masterauth``, for its replica), if any.
    password: str | None = None

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(self.processes)

    @property
    def url(self) -> str:
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.ports[0]},127.0.0.1:{self.ports[1]}"

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node, for checks the cluster client would route away."""
        tls = self.tls.client_options() if self.tls else {}
        return redis.Redis(
            "127.0.0.1",
            port,
            password=self.password,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
            **tls,
        )

    def kill(self, port: int) -> None:
        """Kill one node outright, as a crash or a lost network would look to the others."""
        process = self.processes[port]
        process.kill()
        process.wait(timeout=10)

    def primary_ports(self) -> list[int]:
        return [port for port in self.ports if self.role(port) == "master"]

    def role(self, port: int) -> str | None:
        """``master`` or ``slave`` as the node says, or None when it does not answer."""
        with self.node(port) as node:
            try:
                return str(node.info("replication")["role"])
            except redis.ConnectionError:
                return None


@contextmanager
def running_cluster(
    server: str,
    cli: str,
    directory: Path,
    tls: NodeTls | None = None,
    password: str | None = None,
    node_timeout_ms: int = NODE_TIMEOUT_MS,
) -> Iterator[RunningCluster]:
    """Start the nodes, join them, wait until every node serves every slot, and kill them
    all when the block ends, also when starting failed half-way. A test that kills a primary
    on purpose may shorten ``node_timeout_ms`` so that its failover comes sooner."""
    for attempt in range(1, ATTEMPTS + 1):
        with ExitStack() as stack:
            try:
                where = directory / f"attempt-{attempt}"
                cluster = _start(stack, server, cli, where, tls, password, node_timeout_ms)
            except NodeExitedError:
                if attempt == ATTEMPTS:
                    raise
                continue
            yield cluster
            return


def _start(
    stack: ExitStack,
    server: str,
    cli: str,
    directory: Path,
    tls: NodeTls | None,
    password: str | None,
    node_timeout_ms: int,
) -> RunningCluster:
    count = PRIMARIES * (1 + REPLICAS_PER_PRIMARY)
    # Each node's own port and its cluster bus port: port + 10000, the default, may be taken.
    ports = free_ports(2 * count)
    cluster = RunningCluster(
        {
            port: _start_node(
                stack, server, port, bus_port, directory / str(port), tls, password, node_timeout_ms
            )
            for port, bus_port in zip(ports[:count], ports[count:], strict=True)
        },
        tls,
        password,
    )
    for port in cluster.ports:
        _wait_until(lambda port=port: _answers(cluster, port), f"node {port} starts")
    cli_arguments = (
        ["--tls", "--cacert", str(tls.ca), "--cert", str(tls.cert), "--key", str(tls.key)]
        if tls
        else []
    )
    if password:
        cli_arguments += ["-a", password, "--no-auth-warning"]
    created = subprocess.run(
        [
            cli, *cli_arguments,
            "--cluster", "create",
            *(f"127.0.0.1:{port}" for port in cluster.ports),
            "--cluster-replicas", str(REPLICAS_PER_PRIMARY),
            "--cluster-yes",
        ],
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )  # fmt: skip
    if created.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
    _wait_until(lambda: _serves_every_slot(cluster), "every node serves every slot")
    return cluster


def _start_node(
    stack: ExitStack,
    server: str,
    port: int,
    bus_port: int,
    directory: Path,
    tls: NodeTls | None,
    password: str | None,
    node_timeout_ms: int,
) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    # TLS only: no plain port, and the nodes speak TLS to each other too.
    listen = [
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cluster", "yes",
        "--tls-replication", "yes",
        "--tls-cert-file", str(tls.cert),
        "--tls-key-file", str(tls.key),
        "--tls-ca-cert-file", str(tls.ca),
        "--tls-auth-clients", "yes",
    ] if tls else ["--port", str(port)]  # fmt: skip
    if password:
        listen += ["--requirepass", password, "--masterauth", password]
    process = subprocess.Popen(
        [
            server,
            *listen,
            "--cluster-port", str(bus_port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--logfile", str(directory / "redis.log"),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--save", "",
            "--appendonly", "no",
            # A replica's first sync starts at once instead of after the default 5 s.
            "--repl-diskless-sync-delay", "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def stop() -> None:
        process.kill()
        process.wait(timeout=10)

    stack.callback(stop)
    return process


def _answers(cluster: RunningCluster, port: int) -> bool:
    exit_code = cluster.processes[port].poll()
    if exit_code is not None:
        raise NodeExitedError(f"node {port} exited with {exit_code} while starting")
    with cluster.node(port) as node:
        try:
            return bool(node.ping())
        except redis.ConnectionError:
            return False


def _serves_every_slot(cluster: RunningCluster) -> bool:
    """Every node says cluster_state:ok and maps all slots, and every replica has synced.
    (CLUSTER SLOTS names a replica only once it has replicated a write: not waited for.)"""
    for port in cluster.ports:
        with cluster.node(port) as node:
            try:
                info = node.cluster("info")
            except redis.ConnectionError:
                return False
            if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != SLOTS:
                return False
            replication = node.info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
    return True


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test cluster did not start within {START_SECONDS} s: {what}")
        time.sleep(0.05)
