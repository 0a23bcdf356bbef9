"""The outbox's relay (issue 18 item 3): entries handed on from their aggregates' streams to
the delivery stream in order, fanned out by their kind, under a lease; empty streams
forgotten after their grace, and never while a writer is announcing them again. On
fakeredis, a real redis-server, Sentinel and a real Redis Cluster."""

from __future__ import annotations

import redis

from oidc_link.clock import FixedClock
from oidc_link.config import OutboxSettings
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Outcome
from oidc_link.outbox.relay import FORGET_AFTER, Relay
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL
from tests.test_outbox_worker import write

pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]

ACCOUNT = keyspace.account("acct_1")


def handed_on(redis_client: redis.Redis) -> list[OutboxEntry]:
    return [
        OutboxEntry.from_fields(fields)
        for _, fields in redis_client.xrange(keyspace.OUTBOX_DELIVERIES)
    ]


def indexed(redis_client: redis.Redis) -> list[str]:
    return redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1)


def test_one_aggregate_s_entries_are_handed_on_in_their_order(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    entries = [OutboxEntry("test", f"evt_{n}", {"n": n}) for n in range(250)]
    for entry in entries:
        write(store, redis_client, entry, ACCOUNT)

    assert Relay(store, clock, {}).run_once() == 250

    assert handed_on(redis_client) == entries
    assert redis_client.xlen(keyspace.outbox(ACCOUNT)) == 0


def test_a_kind_s_fan_out_decides_what_is_delivered_in_an_entry_s_place(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    def one_per_endpoint(entry: OutboxEntry) -> list[OutboxEntry]:
        return [
            OutboxEntry(entry.kind, entry.entry_id, {**entry.body, "endpoint": endpoint})
            for endpoint in ("we_1", "we_2")
        ]

    write(store, redis_client, OutboxEntry("event", "evt_1", {"type": "a"}), ACCOUNT)
    write(store, redis_client, OutboxEntry("other", "x_1", {}), keyspace.account("acct_2"))
    write(store, redis_client, OutboxEntry("event", "evt_2", {"type": "b"}), ACCOUNT)

    Relay(store, clock, {"event": one_per_endpoint}).run_once()

    assert sorted((e.entry_id, e.body.get("endpoint")) for e in handed_on(redis_client)) == [
        ("evt_1", "we_1"),
        ("evt_1", "we_2"),
        ("evt_2", "we_1"),
        ("evt_2", "we_2"),
        ("x_1", None),
    ]


def test_entries_whose_fan_out_fails_stay_for_the_next_pass(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    broken = True

    def flaky(entry: OutboxEntry) -> list[OutboxEntry]:
        if broken:
            raise RuntimeError("endpoints not loaded")
        return [entry]

    entry = OutboxEntry("event", "evt_1", {})
    write(store, redis_client, entry, ACCOUNT)
    relay = Relay(store, clock, {"event": flaky})
    assert relay.run_once() == 0
    assert relay.oldest_waiting == clock.now()
    broken = False
    assert relay.run_once() == 1
    assert handed_on(redis_client) == [entry]
    assert relay.oldest_waiting is None


def test_a_stream_another_relay_holds_is_left_to_it(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    write(store, redis_client, OutboxEntry("test", "evt_1", {}), ACCOUNT)
    stream = keyspace.outbox(ACCOUNT)
    assert store.outbox.lease(stream, "the-other-relay", 30_000)

    assert Relay(store, clock, {}).run_once() == 0
    assert handed_on(redis_client) == []
    store.outbox.release(stream, "the-other-relay")
    assert Relay(store, clock, {}).run_once() == 1


def test_an_empty_stream_is_forgotten_only_after_its_grace(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    write(store, redis_client, OutboxEntry("test", "evt_1", {}), ACCOUNT)
    relay = Relay(store, clock, {})
    relay.run_once()
    stream = keyspace.outbox(ACCOUNT)
    clock.advance(FORGET_AFTER)
    relay.run_once()
    assert indexed(redis_client) == [stream]

    clock.advance(1)
    relay.run_once()

    assert indexed(redis_client) == []
    assert redis_client.exists(stream) == 0


def test_a_stream_announced_again_after_the_relay_read_the_index_stays_indexed(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    """The race the score check is for: the relay read (stream, its old score) and found
    the stream empty; a writer announced it since, and is about to XADD."""
    stream = store.outbox.announce(ACCOUNT)
    clock.advance(FORGET_AFTER + 1)
    [(read, announced_at)] = store.outbox.announced(0, 100)
    store.outbox.announce(ACCOUNT)  # the writer, between the relay's read and its forget

    assert not store.outbox.forget(read, announced_at)
    assert indexed(redis_client) == [stream]


def test_an_entry_written_after_the_index_forgot_its_stream_is_found_again(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    """The writer announces after the forget: the stream is indexed again, made again by
    the XADD if its DEL came first."""
    stream = store.outbox.announce(ACCOUNT)
    clock.advance(FORGET_AFTER + 1)
    assert Relay(store, clock, {}).run_once() == 0
    assert indexed(redis_client) == []

    write(store, redis_client, OutboxEntry("test", "evt_1", {}), ACCOUNT)
    assert indexed(redis_client) == [stream]
    assert Relay(store, clock, {}).run_once() == 1


def test_the_relay_sweeps_the_index_a_page_at_a_time(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    """Streams emptied but within their grace sit first in the index: a newer one behind
    a full page of them is still reached, on a later pass."""
    relay = Relay(store, clock, {}, batch=3)
    for n in range(3):
        write(store, redis_client, OutboxEntry("test", f"evt_{n}", {}), keyspace.account(f"a{n}"))
    assert relay.run_once() == 3
    clock.advance(1)
    write(store, redis_client, OutboxEntry("test", "evt_new", {}), keyspace.account("new"))

    assert relay.run_once() + relay.run_once() == 1
    assert [e.entry_id for e in handed_on(redis_client)][-1] == "evt_new"


def test_the_lag_gauge_reads_the_oldest_entry_not_yet_delivered(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    metrics = Metrics.standalone()
    runner = OutboxRunner(
        store, clock, OutboxSettings(threads=1), metrics, {"test": lambda e, a: Outcome.RETRY}, {}
    )
    store.deliveries.create_group()
    write(store, redis_client, OutboxEntry("test", "evt_1", {}), ACCOUNT)
    runner.relay_pass()
    clock.advance(40)
    write(store, redis_client, OutboxEntry("test", "evt_2", {}), keyspace.account("acct_2"))
    runner.relay_pass()
    clock.advance(5)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert runner.measure() == 45
    assert sample("oidc_link_outbox_lag_seconds") == 45
    assert sample("oidc_link_outbox_entries", state="waiting") == 2

    [worker] = runner.workers
    worker.run_once()  # both put off: nothing waits now
    assert runner.measure() == 0
    assert sample("oidc_link_outbox_entries", state="retrying") == 2
    clock.advance(2 * 3600)  # both overdue: no relay pass brought them back
    assert runner.measure() >= 3600
