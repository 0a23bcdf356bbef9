"""The Redis store, on fakeredis and on a real redis-server: records round-trip, single-use
things are taken once (atomically), bearer secrets live under their digest, and TTLs."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.ids import digest, new_id, new_secret
from oidc_link.models import (
    AccessToken,
    AuthorizationCode,
    Flow,
    FlowStep,
    Identity,
    SigningKey,
    SsoSession,
)
from oidc_link.store import Store, connect, keyspace
from oidc_link.store.keyspace import FLOW_AFTERLIFE
from oidc_link.store.outbox import OutboxEntry
from oidc_link.store.sessions import Taken
from tests.conftest import ON_REDIS_CLUSTER, ON_REDIS_SENTINEL

# On a real Redis Cluster (issue 17 item 3) and on Sentinels (issue 18 item 6) too: every test.
pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]

IDENTITY_EMAIL = "jenny@example.com"


def make_identity(clock: FixedClock) -> Identity:
    return Identity(email=IDENTITY_EMAIL, name="Jenny Rosen", auth_time=clock.now())


def make_flow(clock: FixedClock, lifetime: int = 600) -> Flow:
    now = clock.now()
    return Flow(
        id=new_id("flow", 24),
        browser_digest=digest("browser-1"),
        client_id="shop",
        authorization={"redirect_uri": "https://shop.example.com/cb", "state": "xyz"},
        csrf_token=new_secret(24),
        created_at=now,
        expires_at=now + lifetime,
        step=FlowStep.CODE,
        email=IDENTITY_EMAIL,
        redacted_phone="+1********23",
        link_client_secret="sandbox_cs_secret",
        code_attempts=2,
    )


def make_code_record(clock: FixedClock, lifetime: int = 60) -> AuthorizationCode:
    return AuthorizationCode(
        client_id="shop",
        redirect_uri="https://shop.example.com/cb",
        scope="openid email",
        subject="sub-123",
        identity=make_identity(clock),
        expires_at=clock.now() + lifetime,
        nonce="n-0S6_WzA2Mj",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
    )


def redeem(store: Store, code: str, remember_for: int = 60) -> AuthorizationCode | None:
    """Redeem ``code`` as make_code_record's client would at /token (its verifier's S256 is
    the record's challenge), new tokens of the code's family drawn each time, as
    TokenLifecycle.redeem draws them (so on Redis Cluster every key shares the code's slot):
    the code, if tokens were issued."""
    family_id = keyspace.code_family(code)
    return store.tokens.redeem_code(
        code,
        family_id=family_id,
        remember_for=remember_for,
        client_id="shop",
        redirect_uri="https://shop.example.com/cb",
        verifier_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        refresh_always=False,
        registered_scopes="openid email",
        access_token=store.tokens.new_token(family_id),
        refresh_token=store.tokens.new_token(family_id),
        access_lifetime=3600,
        refresh_lifetime=86_400,
    ).record


def make_access_token(clock: FixedClock, lifetime: int = 3600) -> AccessToken:
    return AccessToken(
        client_id="shop",
        subject="sub-123",
        scope="openid email",
        identity=make_identity(clock),
        expires_at=clock.now() + lifetime,
    )


def make_signing_key(
    kid: str, clock: FixedClock, *, alg: str = "RS256", slot: int = 0, signs_from: int | None = None
) -> SigningKey:
    """A key record as the store sees it: the store never opens ``sealed_private``."""
    return SigningKey(
        kid=kid,
        alg=alg,
        slot=slot,
        created_at=clock.now(),
        signs_from=clock.now() if signs_from is None else signs_from,
        sealed_private=f"sealed-{kid}",
        public_jwk={"kty": "RSA", "n": f"n-of-{kid}", "e": "AQAB", "kid": kid},
    )


def everything_in(client: redis.Redis) -> dict[str, str]:
    """Every key and its (string) value, read with the raw client."""
    return {key: client.get(key) for key in client.scan_iter("*")}


def assert_ttl(client: redis.Redis, key: str, expected: int) -> None:
    # Redis rounds the remaining time to whole seconds; allow one second of real time.
    assert expected - 1 <= client.ttl(key) <= expected


# Flows


def test_a_saved_flow_loads_back_equal(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)

    store.flows.add(flow)

    assert store.flows.load(flow.id) == flow


def test_a_missing_flow_loads_as_none(store: Store) -> None:
    assert store.flows.load("flow_missing") is None
    assert store.flows.take("flow_missing") is None


def test_saving_a_flow_again_replaces_it(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)

    advanced = flow.advance(step=FlowStep.EMAIL, link_client_secret=None, code_attempts=0)
    store.flows.save(advanced)

    assert store.flows.load(flow.id) == advanced


def test_a_taken_flow_cannot_be_saved_back(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)
    store.flows.take(flow.id)

    assert store.flows.save(flow.advance(code_attempts=1)) is False
    assert store.flows.load(flow.id) is None


def test_take_flow_returns_it_once_and_then_none(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.flows.add(flow)

    assert store.flows.take(flow.id) == flow
    assert store.flows.take(flow.id) is None
    assert store.flows.load(flow.id) is None


# Authorization codes


def test_a_code_is_taken_once(store: Store, clock: FixedClock) -> None:
    code = new_secret()
    record = make_code_record(clock)
    store.tokens.save_code(code, record)

    assert redeem(store, code) == record
    assert redeem(store, code) is None


def test_an_unknown_code_is_none(store: Store, clock: FixedClock) -> None:
    store.tokens.save_code(new_secret(), make_code_record(clock))

    assert redeem(store, new_secret()) is None


def test_codes_are_stored_under_a_digest_and_never_raw(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    code = new_secret()
    store.tokens.save_code(code, make_code_record(clock))

    stored = everything_in(redis_client)

    assert list(stored) == [keyspace.code(code)]
    for key, value in stored.items():
        assert code not in key
        assert code not in value


def test_taking_a_code_remembers_it_as_spent_in_the_same_step(
    store: Store, clock: FixedClock
) -> None:
    # A replay right after the take (before any token is issued) must find the family.
    code = new_secret()
    store.tokens.save_code(code, make_code_record(clock))

    redeem(store, code)

    assert store.tokens.family_of_spent_code(code) == keyspace.code_family(code)
    assert redeem(store, code) is None
    assert store.tokens.family_of_spent_code(code) == keyspace.code_family(code)


def test_an_unknown_code_leaves_nothing_behind(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    assert redeem(store, new_secret()) is None

    assert everything_in(redis_client) == {}


def test_concurrent_takers_of_one_code_get_it_exactly_once(store: Store, clock: FixedClock) -> None:
    code = new_secret()
    record = make_code_record(clock)
    store.tokens.save_code(code, record)
    takers = 8
    barrier = threading.Barrier(takers)

    def take() -> AuthorizationCode | None:
        barrier.wait(timeout=10)
        return redeem(store, code)

    with ThreadPoolExecutor(max_workers=takers) as pool:
        results = list(pool.map(lambda _: take(), range(takers)))

    winners = [result for result in results if result is not None]
    assert winners == [record]
    assert results.count(None) == takers - 1


# Access tokens


def test_an_access_token_round_trips(store: Store, clock: FixedClock) -> None:
    token = new_secret()
    record = make_access_token(clock)

    store.tokens.save_access_token(token, record)

    assert store.tokens.load_access_token(token) == record
    assert store.tokens.load_access_token(token) == record  # loading does not consume it
    assert store.tokens.load_access_token(new_secret()) is None


def test_access_tokens_are_keyed_by_digest_and_never_stored_raw(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    token = new_secret()
    store.tokens.save_access_token(token, make_access_token(clock))

    stored = everything_in(redis_client)

    assert list(stored) == [keyspace.access_token(token)]
    assert all(token not in key and token not in value for key, value in stored.items())


def test_identity_amr_survives_the_round_trip_as_a_tuple(store: Store, clock: FixedClock) -> None:
    token = new_secret()
    store.tokens.save_access_token(token, make_access_token(clock))

    loaded = store.tokens.load_access_token(token)

    assert loaded is not None
    assert loaded.identity.amr == ("otp", "sms")


# TTLs


def test_every_key_has_a_ttl_except_the_key_rings_and_their_record(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    store.flows.add(make_flow(clock))
    store.tokens.save_code(new_secret(), make_code_record(clock))
    store.tokens.save_access_token(new_secret(), make_access_token(clock))
    store.keyring.add(make_signing_key("kid-1", clock))
    store.keyring.add(make_signing_key("kid-2", clock, alg="ES256"))
    store.keyring.record("RS256", clock.now())

    keys = sorted(redis_client.scan_iter("*"))

    assert len(keys) == 6
    assert all(key.startswith(keyspace.PREFIX) for key in keys)
    for key in keys:
        if key in (keyspace.key_ring("RS256"), keyspace.key_ring("ES256"), keyspace.KEY_RINGS):
            assert redis_client.ttl(key) == -1  # kept on purpose: it must outlive its tokens
        else:
            assert redis_client.ttl(key) > 0, key


def test_ttls_match_expires_at_minus_the_clocks_now(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    # Records made at one moment and saved later: the TTL counts from the clock at saving.
    flow = make_flow(clock, lifetime=600)
    code = new_secret()
    code_record = make_code_record(clock, lifetime=60)
    token = new_secret()
    token_record = make_access_token(clock, lifetime=3600)
    clock.advance(25)

    store.flows.add(flow)
    store.tokens.save_code(code, code_record)
    store.tokens.save_access_token(token, token_record)

    # A flow lingers past its expiry so a late visit can be told what happened.
    assert_ttl(redis_client, keyspace.flow(flow.id), flow.expires_at - clock.now() + FLOW_AFTERLIFE)
    assert_ttl(redis_client, keyspace.code(code), code_record.expires_at - clock.now())
    assert_ttl(
        redis_client,
        keyspace.access_token(token),
        token_record.expires_at - clock.now(),
    )
    assert flow.expires_at - clock.now() == 575


def test_a_record_saved_after_its_expiry_still_gets_a_ttl(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    code = new_secret()
    record = make_code_record(clock, lifetime=60)
    clock.advance(120)

    store.tokens.save_code(code, record)

    assert 0 < redis_client.ttl(keyspace.code(code)) <= 1


# Signing keys: one hash per algorithm, one field per schedule slot


def test_an_empty_key_ring_loads_as_an_empty_list(store: Store) -> None:
    assert store.keyring.load("RS256") == []
    assert store.keyring.load("ES256") == []


def test_an_added_key_loads_back_equal(store: Store, clock: FixedClock) -> None:
    key = make_signing_key("kid-first", clock)

    assert store.keyring.add(key) is True

    assert store.keyring.load("RS256") == [key]


def test_a_taken_slot_keeps_its_first_key(store: Store, clock: FixedClock) -> None:
    first = make_signing_key("kid-first", clock, slot=0)
    second = make_signing_key("kid-second", clock, slot=0)

    assert store.keyring.add(first) is True
    assert store.keyring.add(second) is False
    assert store.keyring.load("RS256") == [first]


def test_keys_in_different_slots_share_the_ring_ordered_by_when_they_sign(
    store: Store, clock: FixedClock
) -> None:
    now = clock.now()
    later = make_signing_key("kid-later", clock, slot=now + 1000, signs_from=now + 1000)
    first = make_signing_key("kid-first", clock, slot=0, signs_from=now)
    middle = make_signing_key("kid-middle", clock, slot=now + 500, signs_from=now + 500)

    for key in (later, first, middle):
        assert store.keyring.add(key) is True

    assert [key.kid for key in store.keyring.load("RS256")] == [
        "kid-first",
        "kid-middle",
        "kid-later",
    ]


def test_each_algorithm_has_its_own_ring(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    rsa_key = make_signing_key("kid-rsa", clock, alg="RS256", slot=0)
    ec_key = make_signing_key("kid-ec", clock, alg="ES256", slot=0)

    assert store.keyring.add(rsa_key) is True
    assert store.keyring.add(ec_key) is True  # the same slot number, another ring

    assert store.keyring.load("RS256") == [rsa_key]
    assert store.keyring.load("ES256") == [ec_key]
    assert store.keyring.load("EdDSA") == []
    assert sorted(redis_client.scan_iter("*")) == [
        keyspace.key_ring("ES256"),
        keyspace.key_ring("RS256"),
    ]
    assert redis_client.hkeys(keyspace.key_ring("RS256")) == ["0"]


def test_removing_a_key_empties_only_its_slot(store: Store, clock: FixedClock) -> None:
    now = clock.now()
    old = make_signing_key("kid-old", clock, slot=0, signs_from=now)
    new = make_signing_key("kid-new", clock, slot=now + 1000, signs_from=now + 1000)
    other = make_signing_key("kid-other", clock, alg="ES256", slot=0)
    for key in (old, new, other):
        store.keyring.add(key)

    store.keyring.remove(old)

    assert store.keyring.load("RS256") == [new]
    assert store.keyring.load("ES256") == [other]
    store.keyring.remove(old)  # removing twice (two instances retiring at once) is harmless
    assert store.keyring.load("RS256") == [new]


def test_a_removed_slot_can_be_filled_again(store: Store, clock: FixedClock) -> None:
    first = make_signing_key("kid-first", clock, slot=0)
    replacement = make_signing_key("kid-replacement", clock, slot=0)
    store.keyring.add(first)
    store.keyring.remove(first)

    assert store.keyring.add(replacement) is True
    assert store.keyring.load("RS256") == [replacement]


def test_the_key_ring_has_no_ttl_even_after_keys_come_and_go(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    now = clock.now()
    first = make_signing_key("kid-first", clock, slot=0)
    store.keyring.add(first)
    store.keyring.add(make_signing_key("kid-next", clock, slot=now + 10, signs_from=now + 10))
    store.keyring.remove(first)
    clock.advance(10 * 365 * 86_400)

    assert redis_client.ttl(keyspace.key_ring("RS256")) == -1
    assert [key.kid for key in store.keyring.load("RS256")] == ["kid-next"]


def test_concurrent_adders_of_one_slot_have_exactly_one_winner(
    store: Store, clock: FixedClock
) -> None:
    adders = 8
    barrier = threading.Barrier(adders)
    candidates = [make_signing_key(f"kid-{index}", clock, slot=12345) for index in range(adders)]

    def add(key: SigningKey) -> bool:
        barrier.wait(timeout=10)
        return store.keyring.add(key)

    with ThreadPoolExecutor(max_workers=adders) as pool:
        results = list(pool.map(add, candidates))

    assert results.count(True) == 1
    winner = candidates[results.index(True)]
    assert store.keyring.load("RS256") == [winner]


def test_the_store_answers_ping(store: Store) -> None:
    assert store.server.ping() is True


def test_connect_without_a_url_gives_an_embedded_redis_and_warns(
    clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="oidc_link.store"):
        client = connect(None)

    store = Store(client, clock)
    flow = make_flow(clock)
    store.flows.add(flow)
    assert store.flows.load(flow.id) == flow
    assert "embedded" in caplog.text


def test_connect_with_a_url_talks_to_that_redis(redis_server_url: str, clock: FixedClock) -> None:
    client = connect(redis_server_url)
    client.flushdb()

    store = Store(client, clock)
    assert store.server.ping()
    key = make_signing_key("kid-url", clock)
    assert store.keyring.add(key)
    assert store.keyring.load("RS256") == [key]
    client.flushdb()


# The account page's sign-out within a sector


def test_a_sessions_clients_are_taken_once_and_only_those_asked_for(
    store: Store, clock: FixedClock
) -> None:
    expires = clock.now() + 3600
    for client_id in ("shop", "blog"):
        store.sessions.remember_client("sid_1", client_id, expires)
    store.sessions.remember_family("sid_1", "fam_1", 3600)

    assert store.sessions.clients(["sid_1", "sid_none"]) == [["blog", "shop"], []]
    to_tell = {"shop": "acct_s", "blog": "acct_b"}
    taken = store.sessions.take_clients("sid_1", ["shop", "acme"], to_tell)
    assert (taken.client_ids, taken.families) == (["shop"], [])
    assert taken.notice_id is not None
    # Of two sign-outs, only the first gets the client (and tells it).
    assert store.sessions.take_clients("sid_1", ["shop"], to_tell) == Taken([], [], None)
    rest = store.sessions.take_dependents("sid_1", {"shop": "acct_s"})
    assert rest == Taken(["blog"], ["fam_1"], None)  # blog takes no notices: none written


def test_taking_a_sessions_clients_writes_their_notice_to_its_outbox_in_the_same_step(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    expires = clock.now() + 3600
    for client_id in ("shop", "blog", "news"):
        store.sessions.remember_client("sid_2", client_id, expires)

    to_tell = {"news": "acct_n", "shop": "acct_s", "other": "acct_o"}
    taken = store.sessions.take_dependents("sid_2", to_tell)

    stream = keyspace.outbox(keyspace.session_dependents("sid_2"))
    assert redis_client.zscore(keyspace.OUTBOX_INDEX, stream) == clock.now()
    [(_, fields)] = redis_client.xrange(stream)
    assert OutboxEntry.from_fields(fields) == OutboxEntry(
        "backchannel_logout",
        taken.notice_id,
        {"sid": "sid_2", "subjects": {"news": "acct_n", "shop": "acct_s"}},
    )
    assert redis_client.exists(keyspace.session_dependents("sid_2")) == 0
    # A second logout of the same session finds nothing and writes nothing.
    assert store.sessions.take_dependents("sid_2", to_tell) == Taken([], [], None)
    assert redis_client.xlen(stream) == 1


def test_a_replaced_session_keeps_its_ttl_and_an_ended_one_stays_ended(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    now = clock.now()
    session = SsoSession(
        sid="sid_1",
        identity=make_identity(clock),
        created_at=now,
        absolute_expiry=now + 3600,
        idle_expiry=now + 600,
    )
    store.sessions.save("secret-1", session)
    key = keyspace.session("secret-1")
    left = replace(session, left_sectors=("shop",))

    assert store.sessions.replace_by_digest(digest("secret-1"), left) is True
    assert store.sessions.load("secret-1") == left
    assert 0 < redis_client.ttl(key) <= 600
    store.sessions.delete("secret-1")
    assert store.sessions.replace_by_digest(digest("secret-1"), left) is False
    assert store.sessions.load("secret-1") is None
