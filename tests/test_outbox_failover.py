"""A Redis Cluster failover in the middle of a delivery (issue 18 item 3) loses nothing: the
primary of the deliveries' slot dies while a handler holds an entry, its replica is
promoted, and every entry is still delivered (some perhaps twice: at least once). A
cluster of its own, as tests/test_cluster_failover.py has for each test that kills a node."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oidc_link.clock import SystemClock
from oidc_link.config import OutboxSettings
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Outcome
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.store import Store, connect, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.conftest import cluster_binaries
from tests.redis_cluster import RunningCluster, running_cluster
from tests.test_cluster_failover import NODE_TIMEOUT_MS, wait_until
from tests.test_outbox_worker import write

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

    delivered: set[str] = set()
    killed = threading.Event()
    everything = threading.Event()

    def receiver(entry: OutboxEntry, attempt: int) -> Outcome:
        if not killed.is_set():
            # Mid-delivery: what was handed on has reached the replica, then the primary dies.
            wait_until(lambda: replica_has_everything(cluster, home), "the replica catches up")
            cluster.kill(home)
            killed.set()
        delivered.add(entry.entry_id)
        if len(delivered) == ENTRIES:
            everything.set()
        return Outcome.DELIVERED

    runner = OutboxRunner(
        store,
        clock,
        OutboxSettings(threads=2, poll_interval=0.2, claim_timeout=1),
        Metrics.standalone(),
        {"test": receiver},
        {},
    )
    runner.start()
    started = time.monotonic()
    try:
        assert everything.wait(120), f"delivered {sorted(delivered)}"
    finally:
        runner.stop()
    print(f"all delivered {time.monotonic() - started:.1f} s after the relay started")

    assert killed.is_set()
    assert delivered == {entry.entry_id for entry in entries}
    wait_until(lambda: client.xlen(keyspace.OUTBOX_DELIVERIES) == 0, "the stream empties")
    client.close()
