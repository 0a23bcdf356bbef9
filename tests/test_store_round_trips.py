"""The store's one-round-trip steps keep the guarantees of the steps they replaced: a lock is
released by its holder only, rate limits count in order and stop at the first one reached,
a code is consumed once and opens its family, queued writes go all together or not at all,
and every key written has a TTL.

Every test here runs twice, on the embedded fakeredis (with Lua) and on a real redis-server.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Lifetimes, Limits
from oidc_link.errors import StoreUnavailableError
from oidc_link.ids import digest, new_secret
from oidc_link.interaction import FlowRequest, Interaction, Problem
from oidc_link.link.sandbox import SandboxLinkClient
from oidc_link.models import FinishedFlow, Flow, RefreshToken, SsoSession
from oidc_link.platform.accounts import Accounts, sign_in_account_id
from oidc_link.platform.events import Events
from oidc_link.store import RateLimit, Store, keyspace
from tests.conftest import ON_REDIS_CLUSTER
from tests.test_interaction import AUTHORIZATION, BROWSER, CLIENT_IP, USERS
from tests.test_refresh_tokens import RT, rotate
from tests.test_store import make_code_record, make_identity, redeem

# On a real Redis Cluster too: every test (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

SALT = "test-subject-salt"


def make_flow(clock: FixedClock) -> Flow:
    return Flow(
        id="flow_" + new_secret(8),
        browser_digest=digest(BROWSER),
        client_id="shop",
        authorization=dict(AUTHORIZATION),
        csrf_token=new_secret(8),
        created_at=clock.now(),
        expires_at=clock.now() + 600,
    )


def all_keys_expire(redis_client: redis.Redis) -> bool:
    return all(
        redis_client.ttl(key) > 0 for key in redis_client.scan_iter(match=keyspace.pattern())
    )


# The flow lock


def test_the_lock_comes_with_the_flow_as_read_under_it(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)

    token, locked = store.flows.lock_and_load(flow.id, 30)

    assert token is not None
    assert locked == flow
    assert store.flows.lock_and_load(flow.id, 30) == (None, None)
    store.flows.unlock(flow.id, token)
    assert store.flows.lock_and_load(flow.id, 30)[0] is not None


def test_the_lock_of_a_missing_flow_is_taken_and_reads_nothing(store: Store) -> None:
    token, locked = store.flows.lock_and_load("flow_gone", 30)

    assert token is not None
    assert locked is None


def test_a_lock_that_timed_out_and_was_taken_by_another_is_not_released_by_the_first(
    store: Store, redis_client: redis.Redis
) -> None:
    first = store.flows.lock("flow_x", 30)
    assert first is not None
    redis_client.delete(keyspace.flow_lock("flow_x"))  # it timed out
    second = store.flows.lock("flow_x", 30)
    assert second is not None

    store.flows.unlock("flow_x", first)

    assert redis_client.get(keyspace.flow_lock("flow_x")) == second
    assert store.flows.lock("flow_x", 30) is None
    store.flows.unlock("flow_x", second)
    assert redis_client.exists(keyspace.flow_lock("flow_x")) == 0


def test_the_write_that_ends_a_step_goes_with_the_release(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)
    token, _ = store.flows.lock_and_load(flow.id, 30)
    assert token is not None
    advanced = flow.advance(code_attempts=1)

    assert store.flows.release(flow.id, token, save=advanced) is True

    assert store.flows.load(flow.id) == advanced
    assert redis_client.exists(keyspace.flow_lock(flow.id)) == 0
    assert all_keys_expire(redis_client)


def test_a_step_that_ends_a_gone_flow_does_not_bring_it_back(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    flow = make_flow(clock)
    token = store.flows.lock(flow.id, 30)
    assert token is not None

    assert store.flows.release(flow.id, token, save=flow) is False

    assert store.flows.load(flow.id) is None
    assert redis_client.exists(keyspace.flow_lock(flow.id)) == 0


def test_a_finished_flow_is_remembered_with_the_release_but_anothers_lock_stays(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)
    mine = store.flows.lock(flow.id, 30)
    assert mine is not None
    store.flows.take(flow.id)
    redis_client.delete(keyspace.flow_lock(flow.id))  # timed out; another took it
    theirs = store.flows.lock(flow.id, 30)
    finished = FinishedFlow(
        client_id="shop",
        redirect_uri="https://shop.example.com/cb",
        sealed_redirect=None,
        redirect_valid_until=clock.now() + 10,
        response_mode="query",
    )

    assert store.flows.release(flow.id, mine, finished=finished) is True

    assert store.flows.load_finished(flow.id) == finished
    assert redis_client.get(keyspace.flow_lock(flow.id)) == theirs
    assert all_keys_expire(redis_client)


def test_a_finished_release_and_a_batchs_set_load_their_scripts_when_the_server_forgot_them(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)
    token = store.flows.lock(flow.id, 30)
    assert token is not None
    finished = FinishedFlow(
        client_id="shop",
        redirect_uri="https://shop.example.com/cb",
        sealed_redirect=None,
        redirect_valid_until=clock.now() + 10,
    )
    redis_client.script_flush()

    batch = store.writes()
    store.tokens.remember_account_family("acct_1", "fam_1", 60, writes=batch)
    assert store.flows.release(flow.id, token, finished=finished, batch=batch) is True

    assert store.flows.load(flow.id) is None
    assert store.flows.load_finished(flow.id) == finished
    assert redis_client.exists(keyspace.flow_lock(flow.id)) == 0
    assert redis_client.smembers(keyspace.account_families("acct_1")) == {"fam_1"}
    assert 0 < redis_client.ttl(keyspace.account_families("acct_1")) <= 60


def test_the_release_loads_its_script_when_the_server_forgot_it(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    # A restarted or failed-over Redis knows no scripts: EVALSHA answers NOSCRIPT.
    flow = make_flow(clock)
    store.flows.add(flow)
    token = store.flows.lock(flow.id, 30)
    assert token is not None
    redis_client.script_flush()

    assert store.flows.release(flow.id, token, save=flow.advance(code_attempts=2)) is True

    assert store.flows.load(flow.id) == flow.advance(code_attempts=2)
    assert redis_client.exists(keyspace.flow_lock(flow.id)) == 0


# Rate limits


def test_limits_are_counted_in_order_and_the_first_one_reached_is_named(
    store: Store, redis_client: redis.Redis
) -> None:
    person = RateLimit("sms_email", "jenny@example.com", 3600, 2)
    client = RateLimit("client_sms", "shop", 86_400, 10)

    assert store.limits.first_reached([person, client]) is None
    assert store.limits.first_reached([person, client]) is None
    assert store.limits.first_reached([person, client]) == person

    counts = {
        key: int(redis_client.get(key)) for key in redis_client.scan_iter(keyspace.pattern("rate"))
    }
    # The refused third event was not charged to the client's allowance.
    assert sorted(counts.values()) == [2, 3]
    assert all_keys_expire(redis_client)


def test_a_limit_counts_in_fixed_windows_that_expire(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    limit = RateLimit("lookup_ip", CLIENT_IP, 600, 1)
    clock.advance(600 - clock.now() % 600)  # the start of a window

    assert store.limits.first_reached([limit]) is None
    clock.advance(599)
    assert store.limits.first_reached([limit]) == limit
    clock.advance(1)
    assert store.limits.first_reached([limit]) is None

    for key in redis_client.scan_iter(keyspace.pattern("rate")):
        assert 0 < redis_client.ttl(key) <= 601


def test_a_person_over_their_sms_limit_does_not_use_up_the_clients_daily_allowance(
    store: Store, clock: FixedClock
) -> None:
    messages: list[str] = []
    interaction = Interaction(
        store,
        SandboxLinkClient(USERS, clock, messages.append, store.sandbox),
        clock,
        Lifetimes(),
        Limits(sms_per_email=1, client_daily_sms=2),
        sleep=lambda seconds: None,
    )

    def sign_in(email: str) -> Problem | None:
        flow = interaction.start("shop", dict(AUTHORIZATION), BROWSER)
        request = FlowRequest(flow.id, BROWSER, csrf_token=flow.csrf_token, client_ip=CLIENT_IP)
        return interaction.submit_email(request, email).problem

    assert sign_in("jenny@example.com") is None
    for _ in range(3):
        assert sign_in("jenny@example.com") is Problem.TOO_MANY_SMS

    assert sign_in("sam@example.com") is None
    assert sign_in("jen@example.org") is Problem.TOO_MANY_SMS
    assert len(messages) == 2


# Codes and token families


def test_taking_a_code_consumes_it_once_remembers_it_spent_and_opens_its_family(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    code = new_secret()
    store.tokens.save_code(code, make_code_record(clock))

    family = keyspace.code_family(code)

    assert redeem(store, code, 120) == make_code_record(clock)
    assert redeem(store, code, 120) is None

    assert store.tokens.family_of_spent_code(code) == family
    assert store.tokens.family_is_live(family) is True
    assert redis_client.ttl(keyspace.spent_code(code)) == 120
    # Opened for as long as the spent mark, then kept as long as its newest token.
    assert redis_client.ttl(keyspace.family(family)) == 3600
    assert all_keys_expire(redis_client)


def test_of_concurrent_takers_one_gets_the_code_and_its_family_opens(
    store: Store, clock: FixedClock
) -> None:
    code = new_secret()
    store.tokens.save_code(code, make_code_record(clock))
    barrier = threading.Barrier(6)

    def take(_: int) -> bool:
        barrier.wait(timeout=10)
        return redeem(store, code) is not None

    with ThreadPoolExecutor(max_workers=6) as pool:
        won = list(pool.map(take, range(6)))

    assert won.count(True) == 1
    # The code names its family (keyspace.code_family): every taker asks to open that one.
    assert store.tokens.family_is_live(keyspace.code_family(code)) is True
    assert store.tokens.family_of_spent_code(code) == keyspace.code_family(code)


def test_a_refresh_token_is_first_used_once(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    refresh = make_refresh_token(clock)
    store.tokens.save_refresh_token(RT, refresh)
    redis_client.set(keyspace.family("fam_x"), "live", ex=60)
    first = clock.now()

    assert rotate(store, RT, scope="openid").outcome == "rotated"
    clock.advance(3)
    assert rotate(store, RT, scope="openid").outcome == "rotated"  # within the grace window
    assert store.tokens.load_refresh_token(RT) == (refresh, first)


def make_refresh_token(clock: FixedClock) -> RefreshToken:
    return RefreshToken(
        client_id="shop",
        subject="sub-123",
        scope="openid offline_access",
        identity=make_identity(clock),
        family_id="fam_x",
        issued_at=clock.now(),
        expires_at=clock.now() + 86_400,
    )


# Queued writes


def test_queued_writes_arrive_together_when_the_block_ends(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    with store.writes() as writes:
        store.tokens.save_code("code-1", make_code_record(clock), writes=writes)
        store.tokens.remember_account_family("acct_1", "fam_1", 600, writes=writes)
        assert list(redis_client.scan_iter(keyspace.pattern())) == []

    assert redeem(store, "code-1") == make_code_record(clock)
    assert redis_client.smembers(keyspace.account_families("acct_1")) == {"fam_1"}
    assert all_keys_expire(redis_client)


def test_queued_writes_are_dropped_when_the_block_fails(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    with pytest.raises(RuntimeError), store.writes() as writes:
        store.tokens.save_code("code-1", make_code_record(clock), writes=writes)
        raise RuntimeError("before the writes were sent")

    assert list(redis_client.scan_iter(keyspace.pattern())) == []


def test_queued_writes_meet_an_outage_as_store_unavailable_error(clock: FixedClock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    store = Store(redis.Redis(port=port, socket_connect_timeout=1), clock)

    with pytest.raises(StoreUnavailableError), store.writes() as writes:
        store.tokens.save_code("code-1", make_code_record(clock), writes=writes)


def test_a_batch_that_is_not_atomic_sends_a_write_and_another_aggregates_read_together(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    accounts = Accounts(store, clock, SALT, Events(store, clock))
    onboarded = accounts.create("shop", "custom")
    assert store.accounts.bind_email("shop", "jenny@example.com", onboarded.id)
    session = make_session(clock)

    with store.writes() as batch:
        store.sessions.save("secret-1", session, writes=batch)
        ahead = accounts.read_ahead("shop", "jenny@example.com")
        batch.ride(ahead)
        assert store.sessions.load("secret-1") is None  # queued, not yet sent
        assert not ahead.answered
        batch.send()  # before the block ends: the read's answer is needed now
        assert ahead.answered
        assert ahead.bound == onboarded.id
        assert store.sessions.load("secret-1") == session
        store.sessions.delete("secret-1")
        store.sessions.save("secret-2", session, writes=batch)  # the batch goes on
    assert store.sessions.load("secret-1") is None
    assert store.sessions.load("secret-2") == session
    with store.writes() as writes:  # the read spared the account's own round trip
        assert accounts.sign_in("shop", "jenny@example.com", "Jenny", writes, ahead) == (
            onboarded.id
        )
        assert len(writes.pipeline) == 0


def test_a_batch_that_is_not_atomic_raises_its_own_failed_write_after_answering_its_reads(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    redis_client.set(keyspace.session_dependents("sid_1"), "not a set")
    accounts = Accounts(store, clock, SALT, Events(store, clock))
    ahead = accounts.read_ahead("shop", "jenny@example.com")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"), store.writes() as batch:
        batch.ride(ahead)
        store.sessions.remember_client("sid_1", "shop", clock.now() + 600, writes=batch)
    assert ahead.answered
    assert (ahead.bound, ahead.record) == (None, None)


def test_a_batch_that_is_not_atomic_meets_an_outage_as_store_unavailable_error(
    clock: FixedClock,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    store = Store(redis.Redis(port=port, socket_connect_timeout=1), clock)

    with pytest.raises(StoreUnavailableError), store.writes() as batch:
        store.sessions.save("secret-1", make_session(clock), writes=batch)


def make_session(clock: FixedClock) -> SsoSession:
    now = clock.now()
    return SsoSession(
        sid="sid_1",
        identity=make_identity(clock),
        created_at=now,
        absolute_expiry=now + 3600,
        idle_expiry=now + 600,
    )


# Accounts at sign-in


def test_a_first_sign_in_creates_the_account_with_the_writes_and_a_second_finds_it(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    accounts = Accounts(store, clock, SALT, Events(store, clock))
    derived = sign_in_account_id(SALT, "shop", "jenny@example.com")

    with store.writes() as writes:
        assert accounts.sign_in("shop", "Jenny@example.com", "Jenny", writes) == derived
        assert store.accounts.load(derived) is None  # queued, not yet sent
    created = accounts.find("shop", derived)
    assert created is not None
    assert created.type == "express"

    clock.advance(60)
    with store.writes() as writes:
        assert accounts.sign_in("shop", "jenny@example.com", "J.", writes) == derived
        assert len(writes.pipeline) == 0
    assert accounts.find("shop", derived) == created


def test_a_sign_in_with_an_email_bound_to_another_account_gets_that_account(
    store: Store, clock: FixedClock
) -> None:
    accounts = Accounts(store, clock, SALT, Events(store, clock))
    onboarded = accounts.create("shop", "custom")
    assert store.accounts.bind_email("shop", "jenny@example.com", onboarded.id)

    with store.writes() as writes:
        assert accounts.sign_in("shop", "jenny@example.com", "Jenny", writes) == onboarded.id
        assert len(writes.pipeline) == 0  # it exists: nothing to create
    assert accounts.subject_of("shop", "jenny@example.com") == onboarded.id
