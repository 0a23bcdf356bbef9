"""The Redis store, on fakeredis and on a real redis-server: records round-trip, single-use
things are taken once (atomically), bearer secrets live under their digest, and TTLs."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.ids import digest, new_id, new_secret
from oidc_link.models import AccessToken, AuthorizationCode, Flow, FlowStep, Identity, SigningKey
from oidc_link.store import FLOW_AFTERLIFE, PREFIX, Store, connect

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


def make_access_token(clock: FixedClock, lifetime: int = 3600) -> AccessToken:
    return AccessToken(
        client_id="shop",
        subject="sub-123",
        scope="openid email",
        identity=make_identity(clock),
        expires_at=clock.now() + lifetime,
    )


def make_signing_key(kid: str, clock: FixedClock) -> SigningKey:
    return SigningKey(
        kid=kid,
        alg="RS256",
        private_pem=f"-----BEGIN PRIVATE KEY----- {kid} -----END PRIVATE KEY-----",
        created_at=clock.now(),
        public_jwk={"kty": "RSA", "n": f"n-of-{kid}", "e": "AQAB"},
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

    store.add_flow(flow)

    assert store.load_flow(flow.id) == flow


def test_a_missing_flow_loads_as_none(store: Store) -> None:
    assert store.load_flow("flow_missing") is None
    assert store.take_flow("flow_missing") is None


def test_saving_a_flow_again_replaces_it(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.add_flow(flow)

    advanced = flow.advance(step=FlowStep.EMAIL, link_client_secret=None, code_attempts=0)
    store.save_flow(advanced)

    assert store.load_flow(flow.id) == advanced


def test_a_taken_flow_cannot_be_saved_back(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.add_flow(flow)
    store.take_flow(flow.id)

    assert store.save_flow(flow.advance(code_attempts=1)) is False
    assert store.load_flow(flow.id) is None


def test_take_flow_returns_it_once_and_then_none(store: Store, clock: FixedClock) -> None:
    flow = make_flow(clock)
    store.add_flow(flow)

    assert store.take_flow(flow.id) == flow
    assert store.take_flow(flow.id) is None
    assert store.load_flow(flow.id) is None


# Authorization codes


def test_a_code_is_taken_once(store: Store, clock: FixedClock) -> None:
    code = new_secret()
    record = make_code_record(clock)
    store.save_code(code, record)

    assert store.take_code(code) == record
    assert store.take_code(code) is None


def test_an_unknown_code_is_none(store: Store, clock: FixedClock) -> None:
    store.save_code(new_secret(), make_code_record(clock))

    assert store.take_code(new_secret()) is None


def test_codes_are_stored_under_a_digest_and_never_raw(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    code = new_secret()
    store.save_code(code, make_code_record(clock))

    stored = everything_in(redis_client)

    assert list(stored) == [PREFIX + "code:" + digest(code)]
    for key, value in stored.items():
        assert code not in key
        assert code not in value


def test_concurrent_takers_of_one_code_get_it_exactly_once(store: Store, clock: FixedClock) -> None:
    code = new_secret()
    record = make_code_record(clock)
    store.save_code(code, record)
    takers = 8
    barrier = threading.Barrier(takers)

    def take() -> AuthorizationCode | None:
        barrier.wait(timeout=10)
        return store.take_code(code)

    with ThreadPoolExecutor(max_workers=takers) as pool:
        results = list(pool.map(lambda _: take(), range(takers)))

    winners = [result for result in results if result is not None]
    assert winners == [record]
    assert results.count(None) == takers - 1


# Access tokens


def test_an_access_token_round_trips(store: Store, clock: FixedClock) -> None:
    token = new_secret()
    record = make_access_token(clock)

    store.save_access_token(token, record)

    assert store.load_access_token(token) == record
    assert store.load_access_token(token) == record  # loading does not consume it
    assert store.load_access_token(new_secret()) is None


def test_access_tokens_are_keyed_by_digest_and_never_stored_raw(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    token = new_secret()
    store.save_access_token(token, make_access_token(clock))

    stored = everything_in(redis_client)

    assert list(stored) == [PREFIX + "access_token:" + digest(token)]
    assert all(token not in key and token not in value for key, value in stored.items())


def test_identity_amr_survives_the_round_trip_as_a_tuple(store: Store, clock: FixedClock) -> None:
    token = new_secret()
    store.save_access_token(token, make_access_token(clock))

    loaded = store.load_access_token(token)

    assert loaded is not None
    assert loaded.identity.amr == ("otp", "sms")


# TTLs


def test_every_key_has_a_ttl_except_the_signing_key(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    store.add_flow(make_flow(clock))
    store.save_code(new_secret(), make_code_record(clock))
    store.save_access_token(new_secret(), make_access_token(clock))
    store.add_signing_key(make_signing_key("kid-1", clock))

    keys = sorted(redis_client.scan_iter("*"))

    assert len(keys) == 4
    assert all(key.startswith(PREFIX) for key in keys)
    for key in keys:
        if key == PREFIX + "signing_key:RS256":
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

    store.add_flow(flow)
    store.save_code(code, code_record)
    store.save_access_token(token, token_record)

    # A flow lingers past its expiry so a late visit can be told what happened.
    assert_ttl(
        redis_client, PREFIX + "flow:" + flow.id, flow.expires_at - clock.now() + FLOW_AFTERLIFE
    )
    assert_ttl(redis_client, PREFIX + "code:" + digest(code), code_record.expires_at - clock.now())
    assert_ttl(
        redis_client,
        PREFIX + "access_token:" + digest(token),
        token_record.expires_at - clock.now(),
    )
    assert flow.expires_at - clock.now() == 575


def test_a_record_saved_after_its_expiry_still_gets_a_ttl(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    code = new_secret()
    record = make_code_record(clock, lifetime=60)
    clock.advance(120)

    store.save_code(code, record)

    assert 0 < redis_client.ttl(PREFIX + "code:" + digest(code)) <= 1


# Signing keys


def test_a_signing_key_is_added_only_once(store: Store, clock: FixedClock) -> None:
    first = make_signing_key("kid-first", clock)
    second = make_signing_key("kid-second", clock)

    assert store.load_signing_key("RS256") is None
    assert store.add_signing_key(first) is True
    assert store.add_signing_key(second) is False
    assert store.load_signing_key("RS256") == first


def test_the_store_answers_ping(store: Store) -> None:
    assert store.ping() is True


def test_connect_without_a_url_gives_an_embedded_redis_and_warns(
    clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="oidc_link.store"):
        client = connect(None)

    store = Store(client, clock)
    flow = make_flow(clock)
    store.add_flow(flow)
    assert store.load_flow(flow.id) == flow
    assert "embedded" in caplog.text


def test_connect_with_a_url_talks_to_that_redis(redis_server_url: str, clock: FixedClock) -> None:
    client = connect(redis_server_url)
    client.flushdb()

    store = Store(client, clock)
    assert store.ping()
    assert store.add_signing_key(make_signing_key("kid-url", clock))
    assert store.load_signing_key("RS256") == make_signing_key("kid-url", clock)
    client.flushdb()
