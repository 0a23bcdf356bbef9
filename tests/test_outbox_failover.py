"""A Redis failover in the middle of a delivery (issue 18 item 3) loses nothing: on Redis
Cluster, the primary of the deliveries' slot dies while a handler holds an entry and its
replica is promoted; with Sentinel, a failover is forced while a handler holds one. Every
entry is still delivered (some perhaps twice: at least once). A cluster of its own, as
tests/test_cluster_failover.py has for each test that kills a node, and the Sentinel setup
of tests/test_redis_connection.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oidc_link.clock import SystemClock
from oidc_link.config import OutboxSettings
from oidc_link.errors import StoreUnavailableError
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Outcome
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.store import Store, connect, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.conftest import cluster_binaries
from tests.redis_cluster import RunningCluster, running_cluster
from tests.test_cluster_failover import NODE_TIMEOUT_MS, wait_until
from tests.test_outbox_worker import write
from tests.test_redis_connection import (  # noqa: F401 - a fixture
    SERVICE,
    SentinelSetup,
    sentinel_settings,
    sentinel_setup,
)

ENTRIES = 20


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    server, cli = cluster_binaries()
    with running_cluster(server, cli, tmp_path, node_timeout_ms=NODE_TIMEOUT_MS) as running:
        yield running


def replica_has_everything(cluster: RunningCluster, primary: int) -> bool:
    """The primary's replica has acknowledged every write the primary has (its offset)."""
    with cluster.node(primary) as node:
        info = node.info("replication")
    replica = info.get("slave0")
    return bool(replica) and int(replica["offset"]) >= int(info["master_repl_offset"])


def stream_emptied(store: Store) -> bool:
    """The delivery stream holds nothing; False while the client still meets the outage
    (a cluster client learns the new slot map at its next command)."""
    try:
        return store.deliveries.backlog().in_stream == 0
    except StoreUnavailableError:
        return False


def delivering_all(
    store: Store, entries: list[OutboxEntry], during_the_first: Callable[[], None]
) -> set[str]:
    """Run an instance's outbox until every entry is delivered and the delivery stream is
    empty (every one acknowledged: some perhaps after a second attempt), calling
    ``during_the_first`` in the middle of the first delivery; what was delivered."""
    delivered: set[str] = set()
    first = threading.Event()
    everything = threading.Event()
    # What went wrong in the handler's thread (the worker would take it for a RETRY).
    failures: list[BaseException] = []

    def receiver(entry: OutboxEntry, attempt: int) -> Outcome:
        if not first.is_set():
            first.set()
            try:
                during_the_first()
            except BaseException as failure:
                failures.append(failure)
                raise
        delivered.add(entry.entry_id)
        if len(delivered) == len(entries):
            everything.set()
        return Outcome.DELIVERED

    runner = OutboxRunner(
        store,
        SystemClock(),
        OutboxSettings(threads=2, poll_interval=0.2, claim_timeout=1),
        Metrics.standalone(),
        {"test": receiver},
        {},
    )
    runner.start()
    started = time.monotonic()
    try:
        everything.wait(120)
        assert not failures, failures
        assert everything.is_set(), f"delivered only {sorted(delivered)}"
        wait_until(lambda: stream_emptied(store), "every delivery is acknowledged and deleted")
    finally:
        runner.stop()
    print(f"all delivered {time.monotonic() - started:.1f} s after the outbox started")
    assert first.is_set()
    return delivered


def test_a_failover_of_the_deliveries_primary_during_a_delivery_loses_nothing(
    cluster: RunningCluster,
) -> None:
    client = connect(cluster.url)
    clock = SystemClock()
    store = Store(client, clock)
    home = client.get_node_from_key(keyspace.OUTBOX_DELIVERIES).port
    entries = [OutboxEntry("test", f"evt_{n}", {"n": n}) for n in range(ENTRIES)]
    for n, entry in enumerate(entries):  # aggregates all over the cluster's slots
        write(store, client, entry, keyspace.account(f"acct_{n}"))

    def kill_the_deliveries_primary() -> None:
        # What was handed on has reached the replica; then the primary dies.
        wait_until(lambda: replica_has_everything(cluster, home), "the replica catches up")
        cluster.kill(home)

    delivered = delivering_all(store, entries, kill_the_deliveries_primary)

    assert delivered == {entry.entry_id for entry in entries}
    client.close()


def test_a_sentinel_failover_during_a_delivery_loses_nothing(
    sentinel_setup: SentinelSetup,  # noqa: F811 - the fixture
) -> None:
    settings = sentinel_settings(sentinel_setup)
    client = connect(settings.redis_url, settings.redis)
    store = Store(client, SystemClock())
    entries = [OutboxEntry("test", f"evt_{n}", {"n": n}) for n in range(ENTRIES)]
    for n, entry in enumerate(entries):
        write(store, client, entry, keyspace.account(f"acct_{n}"))

    def sentinel_knows_the_replica() -> bool:
        with sentinel_setup.sentinel_client() as sentinel:
            replicas = sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE)
        return any(replica.get("master-link-status") == "ok" for replica in replicas)

    def replica_has_everything() -> bool:
        with sentinel_setup.data_client(sentinel_setup.master_port) as master:
            info = master.info("replication")
        replica = info.get("slave0")
        return bool(replica) and int(replica["offset"]) >= int(info["master_repl_offset"])

    def force_a_failover() -> None:
        wait_until(sentinel_knows_the_replica, "Sentinel discovers the replica")
        wait_until(replica_has_everything, "the replica catches up")
        with sentinel_setup.sentinel_client() as sentinel:
            assert sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
        wait_until(
            lambda: sentinel_setup.master_port_named() == sentinel_setup.replica_port,
            "Sentinel names the replica as the new master",
        )

    delivered = delivering_all(store, entries, force_a_failover)

    assert delivered == {entry.entry_id for entry in entries}
    client.close()
