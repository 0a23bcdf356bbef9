"""Issue 18 item 1: each account change writes its event to the outbox in the same script or
MULTI as the change, exactly once, with the account as it now is; a change that does not
happen writes none, and one Redis refuses leaves neither. Read back from the streams with
XRANGE, on fakeredis, a real redis-server and a real Redis Cluster."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.errors import StoreUnavailableError
from oidc_link.oauth.consent import Consents
from oidc_link.platform.accounts import Accounts, Binding
from oidc_link.platform.events import AUTOMATIC, Cause, Events
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.api_client import api_settings
from tests.conftest import ON_REDIS_CLUSTER

pytestmark = ON_REDIS_CLUSTER

SALT = "test-subject-salt"
CAUSE = Cause("req_abc", "idem-1")


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def events(store: Store, clock: FixedClock, settings: Settings) -> Events:
    return Events(store, clock, settings.clients)


@pytest.fixture
def accounts(store: Store, clock: FixedClock, events: Events) -> Accounts:
    return Accounts(store, clock, SALT, events)


def told(redis_client: redis.Redis, key: str) -> list[dict[str, Any]]:
    """The event bodies in ``key``'s outbox stream, oldest first."""
    entries = [
        OutboxEntry.from_fields(fields) for _, fields in redis_client.xrange(keyspace.outbox(key))
    ]
    assert all(entry.kind == "event" and entry.entry_id == entry.body["id"] for entry in entries)
    return [entry.body for entry in entries]


def of_account(redis_client: redis.Redis, account_id: str) -> list[dict[str, Any]]:
    return told(redis_client, keyspace.account(account_id))


def test_creating_an_account_writes_account_created_once_with_the_account_and_request(
    accounts: Accounts, redis_client: redis.Redis, clock: FixedClock
) -> None:
    account = accounts.create("shop", "custom", email="jenny@example.com", cause=CAUSE)

    [event] = of_account(redis_client, account.id)
    assert event["type"] == "account.created"
    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert event["created"] == clock.now()
    assert event["data"] == {"object": account.shown()}
    assert event["request"] == {"id": "req_abc", "idempotency_key": "idem-1"}
    assert event["account"] == account.id
    assert (event["owner"], event["client_ids"]) == ("shop", ["shop"])
    # Announced before it was written, so the relay finds the stream.
    stream = keyspace.outbox(keyspace.account(account.id))
    assert redis_client.zscore(keyspace.OUTBOX_INDEX, stream) == clock.now()


def test_an_event_of_a_sectors_account_names_every_client_of_the_sector(
    accounts: Accounts, redis_client: redis.Redis
) -> None:
    account = accounts.create("acme", "express")

    [event] = of_account(redis_client, account.id)
    assert event["client_ids"] == ["acme-app", "acme-web"]


def test_a_first_sign_in_writes_account_created_and_a_racing_first_sign_in_writes_none(
    accounts: Accounts, store: Store, redis_client: redis.Redis
) -> None:
    # Both read no account, so both try to create it; the second batch is sent first.
    with store.writes() as first, store.writes() as second:
        subject = accounts.sign_in("shop", "jenny@example.com", "Jenny", second)
        assert accounts.sign_in("shop", "jenny@example.com", "J.", first) == subject
    with store.writes() as again:
        accounts.sign_in("shop", "jenny@example.com", "Jenny", again)

    [event] = of_account(redis_client, subject)
    assert event["type"] == "account.created"
    assert event["request"] == {"id": None, "idempotency_key": None}
    assert event["data"]["object"]["details_submitted"] is True
    assert accounts.find("shop", subject) is not None
    assert accounts.find("shop", subject).name == "Jenny"  # type: ignore[union-attr]


def test_an_update_writes_account_updated_with_only_the_changed_fields_old_values(
    accounts: Accounts, redis_client: redis.Redis
) -> None:
    account = accounts.create(
        "shop", "custom", email="a@example.com", metadata={"a": "1", "b": "2"}
    )

    updated = accounts.update(
        "shop", account.id, email="b@example.com", metadata={"a": "", "c": "3"}, cause=CAUSE
    )

    assert updated is not None
    created, event = of_account(redis_client, account.id)
    assert created["type"] == "account.created"
    assert event["type"] == "account.updated"
    assert event["data"] == {
        "object": updated.shown(),
        "previous_attributes": {"email": "a@example.com", "metadata": {"a": "1", "c": None}},
    }
    assert event["request"] == {"id": "req_abc", "idempotency_key": "idem-1"}


def test_an_update_that_changes_nothing_writes_no_event(
    accounts: Accounts, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "custom", metadata={"a": "1"})

    accounts.update("shop", account.id, metadata={"a": "1"})
    accounts.update("shop", account.id, metadata={"gone": ""})

    assert [event["type"] for event in of_account(redis_client, account.id)] == ["account.created"]


def test_a_compare_and_set_that_lost_writes_no_event(
    accounts: Accounts, events: Events, store: Store, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "custom", metadata={"a": "1"})
    stale = store.accounts.load(account.id)
    assert stale is not None
    accounts.update("shop", account.id, metadata={"b": "2"})
    event = events.new("account.updated", "shop", account.id, account.shown())

    assert store.accounts.swap(account.id, stale, stale.replace('"1"', '"9"'), event) is False

    assert [e["type"] for e in of_account(redis_client, account.id)] == [
        "account.created",
        "account.updated",
    ]
    assert event.entry_id not in {e["id"] for e in of_account(redis_client, account.id)}


def test_onboarding_an_email_change_and_a_new_name_each_write_account_updated(
    accounts: Accounts, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "custom", email="jenny@example.com")

    assert accounts.bind("shop", account.id, "jenny@example.com", "Jenny") is Binding.BOUND
    assert accounts.bind("shop", account.id, "jenny@example.com", "Jenny") is Binding.BOUND
    assert accounts.bind("shop", account.id, "jen@example.com", "Jenny") is Binding.BOUND
    assert accounts.bind("shop", account.id, "jen@example.com", "Jenny R.") is Binding.BOUND

    _, submitted, moved, renamed = of_account(redis_client, account.id)
    assert submitted["data"]["previous_attributes"] == {"details_submitted": False}
    assert submitted["data"]["object"]["details_submitted"] is True
    assert moved["data"]["previous_attributes"] == {"email": "jenny@example.com"}
    assert moved["data"]["object"]["email"] == "jen@example.com"
    # The name is not part of the account /v1 shows: it changed, nothing shown did.
    assert renamed["type"] == "account.updated"
    assert renamed["data"]["previous_attributes"] == {}


def test_deleting_writes_account_deleted_once_and_a_second_delete_writes_none(
    accounts: Accounts, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "custom")

    assert accounts.delete("shop", account.id, CAUSE) is True
    assert accounts.delete("shop", account.id, CAUSE) is False

    _, deleted = of_account(redis_client, account.id)
    assert deleted["type"] == "account.deleted"
    # As Stripe's *.deleted events: the object as it was when it was deleted.
    assert deleted["data"] == {"object": account.shown()}


def test_revoking_a_consent_writes_deauthorized_once_in_the_consents_slot(
    store: Store, clock: FixedClock, settings: Settings, events: Events, redis_client: redis.Redis
) -> None:
    accounts = Accounts(store, clock, SALT, events)
    consents = Consents(store, clock, settings.lifetimes, accounts, events)
    consents.remember("acct_jenny", "shop", ["openid", "email"])

    assert consents.revoke("acct_jenny", "shop") is True
    assert consents.revoke("acct_jenny", "shop") is False
    assert consents.revoke("acct_jenny", "blog") is False  # never allowed

    [event] = told(redis_client, keyspace.consent("shop", "acct_jenny"))
    assert event["type"] == "account.application.deauthorized"
    assert event["account"] == "acct_jenny"
    assert event["data"] == {
        "object": {"id": "shop", "object": "application", "name": "Example Shop"}
    }
    assert event["client_ids"] == ["shop"]
    assert told(redis_client, keyspace.consent("blog", "acct_jenny")) == []
    assert consents.granted("acct_jenny", "shop") == frozenset()


def test_signing_out_everywhere_writes_sessions_revoked_with_the_take_of_the_families(
    accounts: Accounts, events: Events, store: Store, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "express")
    store.tokens.remember_account_family(account.id, "fam_1", 600)
    event = events.new("account.sessions.revoked", "shop", account.id, account.shown())

    assert store.tokens.take_account_families(account.id, event) == ["fam_1"]
    assert store.tokens.take_account_families(account.id) == []

    [revoked] = told(redis_client, keyspace.account_families(account.id))
    assert revoked == event.body
    assert revoked["data"] == {"object": account.shown()}


def test_a_change_redis_refuses_leaves_neither_the_change_nor_its_event(
    accounts: Accounts, store: Store, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "custom", metadata={"a": "1"})
    before = store.accounts.load(account.id)
    stream = keyspace.outbox(keyspace.account(account.id))
    redis_client.delete(stream)
    redis_client.set(stream, "not a stream")  # the XADD is refused (WRONGTYPE)

    with pytest.raises((redis.ResponseError, StoreUnavailableError)):
        accounts.update("shop", account.id, metadata={"a": "2"})
    with pytest.raises((redis.ResponseError, StoreUnavailableError)):
        accounts.delete("shop", account.id)

    assert store.accounts.load(account.id) == before
    assert redis_client.zscore(keyspace.accounts_of("shop"), account.id) is not None
    assert redis_client.get(stream) == "not a stream"


def test_changes_made_without_a_request_name_none(
    accounts: Accounts, redis_client: redis.Redis
) -> None:
    account = accounts.create("shop", "custom", cause=AUTOMATIC)

    [event] = of_account(redis_client, account.id)
    assert event["request"] == {"id": None, "idempotency_key": None}
