"""The outbox's contract (issue 18 item 3): a stream per aggregate in the slot of the key
whose change it tells, announced in the index before the change writes it, and entries that
come back as they went in. On fakeredis, a real redis-server and a real Redis Cluster."""

from __future__ import annotations

import redis

from oidc_link.clock import FixedClock
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL

pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]


def test_an_aggregate_and_its_outbox_stream_hash_alike() -> None:
    account = keyspace.account("acct_1")
    flow = keyspace.flow("flow_1")
    assert keyspace.hash_tag(keyspace.outbox(account)) == account
    assert keyspace.hash_tag(keyspace.outbox(flow)) == "flow_1" == keyspace.hash_tag(flow)
    assert keyspace.hash_tag("a{}b") == "a{}b"


def test_an_entry_written_with_its_change_in_one_transaction_comes_back_whole(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    account = keyspace.account("acct_outbox")
    entry = OutboxEntry("event", "evt_1", {"type": "account.updated", "n": 1})

    stream = store.outbox.announce(account)
    with redis_client.pipeline(transaction=True) as change:  # one slot, even on a cluster
        change.set(account, "{}")
        change.xadd(stream, entry.fields())
        change.execute()

    assert redis_client.zscore(keyspace.OUTBOX_INDEX, stream) == clock.now()
    [(_, fields)] = redis_client.xrange(stream)
    assert OutboxEntry.from_fields(fields) == entry


def test_announcing_again_only_moves_the_time_forward(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    account = keyspace.account("acct_again")
    stream = store.outbox.announce(account)
    clock.advance(30)
    store.outbox.announce(account)
    assert redis_client.zscore(keyspace.OUTBOX_INDEX, stream) == clock.now()
