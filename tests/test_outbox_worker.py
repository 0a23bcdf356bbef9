"""The outbox's delivery workers (issue 18 item 3): a handler's outcome acknowledged, put off
with backoff, or given up; retries brought back by the scheduler on the FixedClock; an
entry a consumer holds too long taken over by another. On fakeredis (it has XAUTOCLAIM and
Lua's cjson), a real redis-server, Sentinel and a real Redis Cluster."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import OutboxSettings
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Handler, Outcome
from oidc_link.outbox.relay import Relay
from oidc_link.outbox.worker import Worker
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL

pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]

SETTINGS = OutboxSettings()
HOUR = 3600


def the_ceiling(ceiling: float) -> float:
    """Jitter that always waits the longest its attempt may: the schedule made visible."""
    return ceiling


def write(store: Store, redis_client: redis.Redis, entry: OutboxEntry, aggregate: str) -> None:
    """As a writer does: announce, then the change and its entry in one MULTI."""
    stream = store.outbox.announce(aggregate)
    with redis_client.pipeline(transaction=True) as change:
        change.set(aggregate, "{}")
        change.xadd(stream, entry.fields())
        change.execute()


def worker_for(
    store: Store,
    clock: FixedClock,
    handlers: dict[str, Handler],
    metrics: Metrics | None = None,
    settings: OutboxSettings = SETTINGS,
    consumer: str = "worker-1",
) -> Worker:
    store.deliveries.create_group()
    return Worker(
        store, clock, handlers, settings, consumer, metrics or Metrics.standalone(), the_ceiling
    )


def relayed(store: Store, clock: FixedClock, entry: OutboxEntry, redis_client: redis.Redis) -> None:
    write(store, redis_client, entry, keyspace.account("acct_1"))
    assert Relay(store, clock, {}).run_once() == 1


def nothing_left(redis_client: redis.Redis) -> bool:
    return (
        redis_client.xlen(keyspace.OUTBOX_DELIVERIES) == 0
        and redis_client.zcard(keyspace.OUTBOX_RETRIES) == 0
        and redis_client.xpending(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)["pending"] == 0
    )


ENTRY = OutboxEntry("test", "evt_1", {"type": "account.updated", "secret_looking": "s3cr3t"})


def test_an_entry_refused_three_times_is_acknowledged_once_on_its_fourth_attempt(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    attempts: list[int] = []

    def receiver_down_three_times(entry: OutboxEntry, attempt: int) -> Outcome:
        attempts.append(attempt)
        return Outcome.DELIVERED if attempt == 4 else Outcome.RETRY

    relayed(store, clock, ENTRY, redis_client)
    worker = worker_for(store, clock, {"test": receiver_down_three_times})
    assert worker.run_once() == 1
    for _ in range(5):
        clock.advance(HOUR)
        store.deliveries.promote_due(100)
        worker.run_once()

    assert attempts == [1, 2, 3, 4]
    assert nothing_left(redis_client)


def test_retries_wait_a_jittered_ceiling_that_doubles_up_to_an_hour(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    relayed(store, clock, ENTRY, redis_client)
    worker = worker_for(store, clock, {"test": lambda entry, attempt: Outcome.RETRY})
    waits = []
    for _ in range(9):
        worker.run_once()
        [(_, due)] = redis_client.zrange(keyspace.OUTBOX_RETRIES, 0, 0, withscores=True)
        waits.append(int(due) - clock.now())
        clock.advance(int(due) - clock.now())
        assert store.deliveries.promote_due(100) == 1

    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


def test_a_retry_is_not_brought_back_before_it_is_due(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    relayed(store, clock, ENTRY, redis_client)
    worker = worker_for(store, clock, {"test": lambda entry, attempt: Outcome.RETRY})
    worker.run_once()
    clock.advance(59)
    assert store.deliveries.promote_due(100) == 0
    assert worker.run_once() == 0
    clock.advance(1)
    assert store.deliveries.promote_due(100) == 1
    assert worker.run_once() == 1


def test_an_entry_still_refused_three_days_after_its_first_attempt_is_given_up(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    metrics = Metrics.standalone()
    attempts: list[int] = []

    def receiver_always_down(entry: OutboxEntry, attempt: int) -> Outcome:
        attempts.append(attempt)
        return Outcome.RETRY

    relayed(store, clock, ENTRY, redis_client)
    first = clock.now()
    worker = worker_for(store, clock, {"test": receiver_always_down}, metrics)
    while worker.run_once() or store.deliveries.promote_due(100):
        clock.advance(HOUR)
        store.deliveries.promote_due(100)

    assert nothing_left(redis_client)
    # An attempt each hour (the clock's step; every wait is an hour at most): the 72nd, at
    # 71 h, puts the next off to 72 h, within the 3 days; the 73rd's next would be past them.
    assert attempts == list(range(1, 74))
    assert clock.now() - first >= 3 * 24 * HOUR
    given_up = metrics.registry.get_sample_value(
        "oidc_link_outbox_given_up_total", {"kind": "other"}
    )
    assert given_up == 1


def test_an_entry_the_receiver_refuses_for_good_is_given_up_at_once(
    store: Store, redis_client: redis.Redis, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    def gone(entry: OutboxEntry, attempt: int) -> Outcome:
        attempts.append(attempt)
        return Outcome.GIVE_UP

    relayed(store, clock, ENTRY, redis_client)
    with caplog.at_level(logging.WARNING):
        worker_for(store, clock, {"test": gone}).run_once()
    clock.advance(HOUR)
    store.deliveries.promote_due(100)

    assert attempts == [1]
    assert nothing_left(redis_client)
    [given_up] = [r for r in caplog.records if getattr(r, "event", "") == "outbox.given_up"]
    assert given_up.entry_id == "evt_1"


def test_a_handler_that_raises_is_retried_and_logged_without_the_body(
    store: Store, redis_client: redis.Redis, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    def buggy(entry: OutboxEntry, attempt: int) -> Outcome:
        attempts.append(attempt)
        if attempt == 1:
            raise ValueError(f"cannot send {entry.body}")
        return Outcome.DELIVERED

    relayed(store, clock, ENTRY, redis_client)
    worker = worker_for(store, clock, {"test": buggy})
    with caplog.at_level(logging.INFO):
        worker.run_once()
        clock.advance(60)
        store.deliveries.promote_due(100)
        worker.run_once()

    assert attempts == [1, 2]
    assert nothing_left(redis_client)
    assert "s3cr3t" not in caplog.text
    [failed] = [r for r in caplog.records if getattr(r, "event", "") == "outbox.handler_failed"]
    assert failed.error == "ValueError"


def test_an_entry_of_a_kind_without_a_handler_is_kept_for_an_instance_that_has_one(
    store: Store, redis_client: redis.Redis, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    relayed(store, clock, ENTRY, redis_client)
    older = worker_for(store, clock, {}, consumer="older-version")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # kept, never given up, said once
            older.run_once()
            clock.advance(SETTINGS.max_age)
            store.deliveries.promote_due(100)
    attempts: list[int] = []

    def handler(entry: OutboxEntry, attempt: int) -> Outcome:
        attempts.append(attempt)
        return Outcome.DELIVERED

    worker_for(store, clock, {"test": handler}, consumer="newer-version").run_once()

    assert attempts == [1]
    assert nothing_left(redis_client)
    no_handler = [r for r in caplog.records if getattr(r, "event", "") == "outbox.no_handler"]
    assert len(no_handler) == 1


def test_an_entry_a_consumer_holds_past_the_claim_timeout_goes_to_another(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    relayed(store, clock, ENTRY, redis_client)
    store.deliveries.create_group()
    # A consumer that read the entry and then died, before any outcome.
    [(_, held)] = store.deliveries.read("dead-instance", 10, 0)
    assert held is not None and held.entry == ENTRY
    delivered: list[OutboxEntry] = []

    def handler(entry: OutboxEntry, attempt: int) -> Outcome:
        delivered.append(entry)
        return Outcome.DELIVERED

    patient = worker_for(store, clock, {"test": handler}, consumer="live-instance")
    assert patient.run_once() == 0  # held for less than the claim timeout: left alone
    eager = worker_for(store, clock, {"test": handler}, settings=replace(SETTINGS, claim_timeout=0))
    assert eager.run_once() == 1

    assert delivered == [ENTRY]
    assert nothing_left(redis_client)


def test_a_delivery_stream_lost_with_its_group_is_made_again(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    delivered: list[OutboxEntry] = []
    worker = worker_for(
        store, clock, {"test": lambda e, a: delivered.append(e) or Outcome.DELIVERED}
    )
    redis_client.delete(keyspace.OUTBOX_DELIVERIES)  # a Redis replaced by an empty one

    assert worker.run_once() == 0
    relayed(store, clock, ENTRY, redis_client)
    assert worker.run_once() == 1
    assert delivered == [ENTRY]


def test_entries_held_for_half_the_claim_timeout_are_put_back_not_attempted_late(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    for n in range(3):
        write(store, redis_client, OutboxEntry("test", f"evt_{n}", {}), keyspace.account(f"a{n}"))
    Relay(store, clock, {}).run_once()
    attempted: list[tuple[str, int]] = []

    def slow_receiver(entry: OutboxEntry, attempt: int) -> Outcome:
        attempted.append((entry.entry_id, attempt))
        clock.advance(SETTINGS.claim_timeout // 2 + 1)  # its whole deadline, and then some
        return Outcome.DELIVERED

    worker = worker_for(store, clock, {"test": slow_receiver})
    assert worker.run_once() == 1
    # Put back due at once, not left pending for a claim (which would count as a death).
    assert redis_client.xpending(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)["pending"] == 0
    assert store.deliveries.promote_due(100) == 2
    while worker.run_once():
        store.deliveries.promote_due(100)

    # Each attempted once, as its first attempt.
    assert sorted(attempted) == [("evt_0", 1), ("evt_1", 1), ("evt_2", 1)]
    assert nothing_left(redis_client)


def test_a_handler_answering_something_else_than_an_outcome_is_retried_not_acknowledged(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    relayed(store, clock, ENTRY, redis_client)
    worker = worker_for(store, clock, {"test": lambda entry, attempt: None})  # type: ignore[arg-type,return-value]
    worker.run_once()
    assert redis_client.zcard(keyspace.OUTBOX_RETRIES) == 1
    assert redis_client.xlen(keyspace.OUTBOX_DELIVERIES) == 0


def test_consumers_long_idle_with_nothing_pending_are_dropped_from_the_group(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    relayed(store, clock, ENTRY, redis_client)
    store.deliveries.create_group()
    [(finished, _)] = store.deliveries.read("gone-instance", 10, 0)
    store.deliveries.finish(finished)  # then its process ended: nothing pending
    relayed(store, clock, ENTRY, redis_client)
    store.deliveries.read("busy-instance", 10, 0)  # holds the entry

    assert store.deliveries.forget_idle_consumers(24 * HOUR * 1000) == []
    assert store.deliveries.forget_idle_consumers(0) == ["gone-instance"]
    consumers = redis_client.xinfo_consumers(keyspace.OUTBOX_DELIVERIES, keyspace.OUTBOX_GROUP)
    assert [consumer["name"] for consumer in consumers] == ["busy-instance"]


@pytest.mark.parametrize(("deaths", "attempted"), [(4, [1]), (5, [])])
def test_an_entry_whose_attempt_never_ended_five_times_is_given_up_by_the_next_claim(
    store: Store, redis_client: redis.Redis, clock: FixedClock, deaths: int, attempted: list[int]
) -> None:
    """Each consumer that took it died mid-attempt (it may be what kills them): after the
    fifth, the next one to claim it gives it up rather than pass it on for ever."""
    metrics = Metrics.standalone()
    relayed(store, clock, ENTRY, redis_client)
    store.deliveries.create_group()
    store.deliveries.read("first-victim", 10, 0)
    for n in range(deaths - 1):
        store.deliveries.claim(f"victim-{n}", 0, 10)
    attempts: list[int] = []

    def receiver(entry: OutboxEntry, attempt: int) -> Outcome:
        attempts.append(attempt)
        return Outcome.DELIVERED

    eager = worker_for(
        store, clock, {"test": receiver}, metrics, replace(SETTINGS, claim_timeout=0)
    )
    eager.run_once()

    assert attempts == attempted
    assert nothing_left(redis_client)
    given_up = metrics.registry.get_sample_value(
        "oidc_link_outbox_given_up_total", {"kind": "other"}
    )
    assert given_up == (None if attempted else 1)  # None: no entry of that kind given up
