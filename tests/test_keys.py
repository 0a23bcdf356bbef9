"""Signing keys that rotate on their own, on fakeredis and on a real redis-server.

A fixed clock drives the schedule (next -> current -> previous -> retired); instances share
one Redis and agree on the signing key; private keys are encrypted at rest; backups restore;
racing instances (threads and separate processes) create exactly one key per slot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import DEVELOPMENT_KEY_ENCRYPTION_KEY, KeySettings
from oidc_link.keys import BACKUP_FORMAT, KeyEncryptionError, SigningKeys, jwk_thumbprint
from oidc_link.models import SigningKey
from oidc_link.sealed import decrypt
from oidc_link.store import Store, keyspace
from tests.conftest import ON_REDIS_CLUSTER

pytestmark = ON_REDIS_CLUSTER

KEK = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER_KEK = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()

# Small numbers that keep the schedule readable: a key signs for ROTATION seconds, is
# published LEAD seconds before it signs, and stays TOKEN_LIFETIME + MARGIN after it stops.
ROTATION = 1000
MAX_AGE = 100
MARGIN = 60
REFRESH = 10
LEAD = MAX_AGE + MARGIN
TOKEN_LIFETIME = 300
DUE = ROTATION - LEAD  # when the next key is created, counted from the current key's start

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}

# RFC 7638 §3.1: the example RSA key and its published thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM"
    "4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def key_settings(*algorithms: str, kek: str = KEK) -> KeySettings:
    return KeySettings(
        algorithms=("RS256", *algorithms),
        rotation_period=ROTATION,
        jwks_max_age=MAX_AGE,
        margin=MARGIN,
        refresh_interval=REFRESH,
        encryption_key=kek,
        development_encryption_key=False,
    )


def new_instance(store: Store, clock: FixedClock, *algorithms: str, kek: str = KEK) -> SigningKeys:
    """One app instance's view of the keys: what create_app builds for each process."""
    return SigningKeys(store, clock, key_settings(*algorithms, kek=kek), TOKEN_LIFETIME)


def claims_at(clock: FixedClock, audience: str = "shop") -> dict[str, Any]:
    now = clock.now()
    return {
        "iss": "https://login.example.test",
        "sub": "sub-123",
        "aud": audience,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
    }


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def run_until(moment: int, clock: FixedClock, *instances: SigningKeys) -> None:
    """Move the clock as a running server lives it: every instance refreshes on its timer."""
    while clock.now() < moment:
        clock.advance(min(REFRESH, moment - clock.now()))
        for keys in instances:
            keys.refresh_if_due()


def published_kids(keys: SigningKeys) -> list[str]:
    return [jwk["kid"] for jwk in keys.jwks()["keys"]]


def verifies_against(token: str, jwks: dict[str, list[dict[str, str]]]) -> bool:
    """What a relying party does with a JWKS it fetched: find the kid, check the signature."""
    header = jwt.get_unverified_header(token)
    jwk = next((k for k in jwks["keys"] if k["kid"] == header["kid"]), None)
    if jwk is None:
        return False
    try:
        jwt.decode(
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[jwk["alg"]],
            audience="shop",
            options={"verify_exp": False, "verify_iat": False},  # the clock is a fixed one
        )
    except jwt.InvalidTokenError:
        return False
    return True


def ring_snapshot(client: redis.Redis) -> dict[str, dict[str, str]]:
    return {
        name: client.hgetall(name) for name in sorted(client.scan_iter(keyspace.pattern("keys")))
    }


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3, written out again: SHA-256 of the required members, sorted, compact."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


@pytest.fixture
def keys(store: Store, clock: FixedClock) -> SigningKeys:
    instance = new_instance(store, clock)
    instance.load()
    return instance


# Start-up


def test_a_new_installation_gets_one_current_key_announced_as_info_not_as_an_error(
    store: Store, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    keys = new_instance(store, clock)

    with caplog.at_level(logging.INFO, logger="oidc_link.keys"):
        keys.load()

    [key] = store.keyring.load("RS256")
    assert key.slot == 0
    assert key.signs_from == clock.now()
    assert key.created_at == clock.now()
    assert [status.state for status in keys.statuses()] == ["current"]
    assert published_kids(keys) == [key.kid]
    assert kid_of(keys.sign(claims_at(clock))) == key.kid
    [first] = [r for r in caplog.records if "first RS256 signing key" in r.getMessage()]
    assert first.levelno == logging.INFO
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_key_ring_that_existed_and_is_gone_is_recreated_with_an_error(
    keys: SigningKeys,
    store: Store,
    redis_client: redis.Redis,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lost = published_kids(keys)
    redis_client.delete(keyspace.key_ring("RS256"))  # lost: evicted, deleted, a partial restore
    clock.advance(60)

    fresh = new_instance(store, clock)  # every instance restarted: none holds the old keys
    with caplog.at_level(logging.INFO, logger="oidc_link.keys"):
        fresh.load()

    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "RS256 signing keys are gone from Redis" in error.getMessage()
    assert "oidc-link keys import" in error.getMessage()
    assert "first RS256 signing key" not in caplog.text
    assert published_kids(fresh) != lost  # a new key signs; the lost one is gone for good


def test_a_ring_from_before_the_record_existed_is_recorded_at_the_next_start(
    store: Store, redis_client: redis.Redis, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    new_instance(store, clock).load()
    redis_client.delete(keyspace.KEY_RINGS)  # as an installation upgraded from before it

    new_instance(store, clock).load()  # the upgraded version starts
    redis_client.delete(keyspace.key_ring("RS256"))
    with caplog.at_level(logging.ERROR, logger="oidc_link.keys"):
        new_instance(store, clock).load()

    assert "RS256 signing keys are gone from Redis" in caplog.text


def test_a_second_instance_uses_the_keys_already_in_redis(
    keys: SigningKeys, store: Store, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.advance(DUE - 1)
    second = new_instance(store, clock)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="oidc_link.keys"):
        second.load()

    assert caplog.text == ""
    assert second.jwks() == keys.jwks()
    assert len(store.keyring.load("RS256")) == 1
    assert kid_of(second.sign(claims_at(clock))) == kid_of(keys.sign(claims_at(clock)))


def test_the_development_key_encryption_key_is_announced_once(
    store: Store, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = KeySettings(
        encryption_key=DEVELOPMENT_KEY_ENCRYPTION_KEY, development_encryption_key=True
    )
    keys = SigningKeys(store, clock, settings, TOKEN_LIFETIME)

    with caplog.at_level(logging.WARNING, logger="oidc_link.keys"):
        keys.load()
        for _ in range(3):
            clock.advance(settings.refresh_interval)
            keys.refresh_if_due()

    assert caplog.text.count("development key-encryption key") == 1


# Encryption at rest


def test_private_keys_are_stored_encrypted_with_the_key_encryption_key(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    keys = new_instance(store, clock, "ES256", "EdDSA")
    keys.load()

    rings = ring_snapshot(redis_client)

    assert sorted(rings) == [
        keyspace.key_ring("ES256"),
        keyspace.key_ring("EdDSA"),
        keyspace.key_ring("RS256"),
    ]
    for ring in rings.values():
        for raw in ring.values():
            assert "PRIVATE KEY" not in raw
            key = SigningKey.from_record(raw)
            assert not PRIVATE_MEMBERS & set(key.public_jwk)
            associated = f"{key.alg}:{key.kid}".encode()
            opened = decrypt(base64.urlsafe_b64decode(KEK), key.sealed_private, associated)
            assert opened is not None
            assert opened.startswith(b"-----BEGIN PRIVATE KEY-----")
            wrong = base64.urlsafe_b64decode(OTHER_KEK)
            assert decrypt(wrong, key.sealed_private, associated) is None


def test_a_wrong_key_encryption_key_stops_start_up_and_changes_nothing(
    keys: SigningKeys, store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    clock.advance(ROTATION * 5)  # long overdue: a rotation and a retirement are both due
    before = ring_snapshot(redis_client)

    with pytest.raises(KeyEncryptionError, match="OIDC_LINK_KEY_ENCRYPTION_KEY"):
        new_instance(store, clock, kek=OTHER_KEK).load()

    assert ring_snapshot(redis_client) == before


def test_a_wrong_key_encryption_key_changes_no_ring_even_when_another_ring_is_empty(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    first = new_instance(store, clock, "ES256")
    first.load()
    [rsa_key] = store.keyring.load("RS256")
    store.keyring.remove(rsa_key)  # RS256 comes first and would be re-created
    before = ring_snapshot(redis_client)

    with pytest.raises(KeyEncryptionError):
        new_instance(store, clock, "ES256", kek=OTHER_KEK).load()

    assert ring_snapshot(redis_client) == before
    assert store.keyring.load("RS256") == []


# kid and JWKS


def test_jwk_thumbprint_matches_the_rfc7638_example() -> None:
    example = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}

    assert thumbprint(example) == RFC7638_THUMBPRINT
    assert jwk_thumbprint(example) == RFC7638_THUMBPRINT


@pytest.mark.parametrize(
    ("alg", "public_members"),
    [
        ("RS256", {"kty": "RSA"}),
        ("ES256", {"kty": "EC", "crv": "P-256"}),
        ("EdDSA", {"kty": "OKP", "crv": "Ed25519"}),
    ],
)
def test_each_algorithm_publishes_a_public_key_named_by_its_thumbprint(
    store: Store, clock: FixedClock, alg: str, public_members: dict[str, str]
) -> None:
    keys = new_instance(store, clock, "ES256", "EdDSA")
    keys.load()

    [jwk] = [k for k in keys.jwks()["keys"] if k["alg"] == alg]

    assert public_members.items() <= jwk.items()
    assert jwk["use"] == "sig"
    assert jwk["kid"] == thumbprint(jwk)
    assert not PRIVATE_MEMBERS & set(jwk)
    [stored] = store.keyring.load(alg)
    assert stored.kid == jwk["kid"]


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_a_token_signed_with_each_algorithm_verifies_against_the_jwks(
    store: Store, clock: FixedClock, alg: str
) -> None:
    keys = new_instance(store, clock, "ES256", "EdDSA")
    keys.load()
    claims = claims_at(clock)

    token = keys.sign(claims, alg)

    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    assert header["typ"] == "JWT"
    assert verifies_against(token, keys.jwks())
    assert keys.verify(token, audience="shop") == claims


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
@pytest.mark.parametrize("typ", ["JWT", "logout+jwt"])
def test_a_token_is_what_pyjwt_writes_for_the_same_key_claims_and_header(
    store: Store, clock: FixedClock, alg: str, typ: str
) -> None:
    """keys.py writes the JWS itself (a cached header, one JSON encoder); PyJWT's token for
    the same input is the reference, byte for byte where the signature is deterministic."""
    keys = new_instance(store, clock, "ES256", "EdDSA")
    keys.load()
    claims = {**claims_at(clock), "name": "Zoë \u2603", "events": {"urn:x": {}}, "amr": ["sms"]}
    [stored] = store.keyring.load(alg)
    pem = decrypt(
        base64.urlsafe_b64decode(KEK), stored.sealed_private, f"{alg}:{stored.kid}".encode()
    )
    assert pem is not None

    token = keys.sign(claims, alg, typ=typ)

    reference = jwt.encode(claims, pem, algorithm=alg, headers={"kid": stored.kid, "typ": typ})
    if alg == "ES256":  # ECDSA signatures are randomised: the signed part must match
        assert token.rsplit(".", 1)[0] == reference.rsplit(".", 1)[0]
        assert verifies_against(token, keys.jwks())
    else:
        assert token == reference


def test_a_tampered_token_does_not_verify(keys: SigningKeys, clock: FixedClock) -> None:
    token = keys.sign(claims_at(clock))
    header, _payload, signature = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"someone-else","aud":"shop"}').rstrip(b"=")

    tampered = f"{header}.{forged.decode()}.{signature}"

    assert not verifies_against(tampered, keys.jwks())
    with pytest.raises(jwt.InvalidSignatureError):
        keys.verify(tampered, audience="shop")


def test_a_token_from_a_key_nobody_holds_does_not_verify(
    keys: SigningKeys, embedded_redis: redis.Redis, clock: FixedClock
) -> None:
    stranger = new_instance(Store(embedded_redis, clock), clock)
    token = stranger.sign(claims_at(clock))

    assert not verifies_against(token, keys.jwks())
    with pytest.raises(jwt.InvalidTokenError, match="unknown key id"):
        keys.verify(token, audience="shop")


def test_verify_judges_expiry_and_audience_by_the_injected_clock(
    keys: SigningKeys, clock: FixedClock
) -> None:
    token = keys.sign(claims_at(clock))

    clock.advance(TOKEN_LIFETIME - 1)
    assert keys.verify(token, audience="shop")["sub"] == "sub-123"
    with pytest.raises(jwt.InvalidAudienceError):
        keys.verify(token, audience="blog")
    clock.advance(1)
    with pytest.raises(jwt.ExpiredSignatureError):
        keys.verify(token, audience="shop")


# The schedule


def test_the_next_key_is_created_one_lead_time_before_its_slot_and_not_earlier(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    start = clock.now()
    [first] = store.keyring.load("RS256")

    clock.advance(DUE - 1)
    keys.load()
    assert store.keyring.load("RS256") == [first]

    clock.advance(1)
    keys.load()
    [_, second] = store.keyring.load("RS256")
    assert second.slot == start + ROTATION
    assert second.signs_from == start + ROTATION
    assert second.created_at == clock.now()
    assert second.signs_from - second.created_at == LEAD == keys.lead_time


def test_the_jwks_at_each_stage_of_a_rotation(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    start = clock.now()
    [first] = store.keyring.load("RS256")

    def stage() -> list[tuple[str, str, int | None]]:
        kids = published_kids(keys)
        states = [(s.key.kid, s.state, s.retires_at) for s in keys.statuses()]
        assert kids == [kid for kid, _, _ in states]
        return states

    # One key: current, signing, no end in sight.
    assert stage() == [(first.kid, "current", None)]

    # One lead time before the slot: the next key is published but does not sign.
    clock.advance(DUE)
    states = stage()
    second = store.keyring.load("RS256")[1]
    retires_at = start + ROTATION + TOKEN_LIFETIME + MARGIN  # known once its successor is
    assert states == [(first.kid, "current", retires_at), (second.kid, "next", None)]
    assert kid_of(keys.sign(claims_at(clock))) == first.kid
    clock.advance(LEAD - 1)
    assert kid_of(keys.sign(claims_at(clock))) == first.kid

    # The slot: the next key signs, the old one is previous until its tokens have expired.
    clock.advance(1)
    assert stage() == [(second.kid, "current", None), (first.kid, "previous", retires_at)]
    assert kid_of(keys.sign(claims_at(clock))) == second.kid

    clock.advance(TOKEN_LIFETIME + MARGIN - 1)
    assert stage() == [(second.kid, "current", None), (first.kid, "previous", retires_at)]

    # Retired: gone from the JWKS at once, and from Redis at the next load.
    clock.advance(1)
    assert stage() == [(second.kid, "current", None)]
    keys.load()
    assert store.keyring.load("RS256") == [second]

    # And round again, from the second key's start.
    clock.advance(start + ROTATION + DUE - clock.now())
    states = stage()
    third = store.keyring.load("RS256")[1]
    assert third.signs_from == start + 2 * ROTATION
    assert states == [
        (second.kid, "current", start + 2 * ROTATION + TOKEN_LIFETIME + MARGIN),
        (third.kid, "next", None),
    ]


def test_a_token_signed_before_a_rotation_verifies_against_the_jwks_until_retirement(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    start = clock.now()
    run_until(start + ROTATION - 1, clock, keys)  # the old key's very last second
    token = keys.sign(claims_at(clock))
    old_kid = kid_of(token)

    clock.advance(1)
    assert kid_of(keys.sign(claims_at(clock))) != old_kid
    retirement = start + ROTATION + TOKEN_LIFETIME + MARGIN
    expires_at = start + ROTATION - 1 + TOKEN_LIFETIME
    while clock.now() < retirement:
        assert verifies_against(token, keys.jwks()), clock.now()
        if clock.now() < expires_at:
            assert keys.verify(token, audience="shop")["sub"] == "sub-123"
        clock.advance(REFRESH)
    # The token itself expired more than MARGIN seconds ago; now its key goes too.
    assert clock.now() >= expires_at + MARGIN
    assert not verifies_against(token, keys.jwks())
    assert old_kid not in published_kids(keys)
    assert old_kid not in [key.kid for key in store.keyring.load("RS256")]


def test_an_instance_that_checks_late_still_publishes_the_next_key_one_lead_time_ahead(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    # Nothing ran between the current key's start and well past its slot.
    clock.advance(ROTATION + 500)

    keys.load()

    [first, second] = store.keyring.load("RS256")
    assert second.signs_from == clock.now() + LEAD
    assert kid_of(keys.sign(claims_at(clock))) == first.kid
    assert [s.state for s in keys.statuses()] == ["current", "next"]


@pytest.mark.parametrize("first_to_refresh", ["publisher", "signer"])
def test_every_token_verifies_with_any_jwks_a_relying_party_may_hold_while_it_is_valid(
    embedded_redis: redis.Redis, clock: FixedClock, first_to_refresh: str
) -> None:
    """Two instances, out of step on their refresh timers: one serves the JWKS, one signs.

    A relying party may hold a JWKS fetched up to MAX_AGE ago, and may see a token until it
    expires: so each token's kid must be in every JWKS served from MAX_AGE before it was
    signed until it expires. That is what the lead time and the margin are for, whichever
    instance creates the next key and however stale the other one's view is.
    """
    store = Store(embedded_redis, clock)
    publisher, signer = new_instance(store, clock), new_instance(store, clock)
    first, second = (publisher, signer) if first_to_refresh == "publisher" else (signer, publisher)
    start = clock.now()
    first.load()
    clock.advance(REFRESH // 2)
    second.load()
    served: dict[int, set[str]] = {}
    signed: list[tuple[int, str]] = []

    while clock.now() < start + 2 * ROTATION + TOKEN_LIFETIME + 2 * MARGIN:
        served[clock.now()] = set(published_kids(publisher))
        signed.append((clock.now(), kid_of(signer.sign(claims_at(clock)))))
        clock.advance(1)

    assert len({kid for _, kid in signed}) == 3  # the walk saw two rotations
    for signed_at, kid in signed:
        for fetched_at in range(signed_at - MAX_AGE, signed_at + TOKEN_LIFETIME + 1):
            if fetched_at in served:
                assert kid in served[fetched_at], (signed_at - start, fetched_at - start)


def test_statuses_name_each_key_state_and_when_it_retires(
    keys: SigningKeys, clock: FixedClock
) -> None:
    start = clock.now()

    retires_at = start + ROTATION + TOKEN_LIFETIME + MARGIN

    assert [(s.state, s.key.signs_from, s.retires_at) for s in keys.statuses()] == [
        ("current", start, None),  # no successor yet, so no end yet
    ]
    clock.advance(DUE)
    assert [(s.state, s.key.signs_from, s.retires_at) for s in keys.statuses()] == [
        ("current", start, retires_at),
        ("next", start + ROTATION, None),
    ]
    clock.advance(LEAD)
    assert [(s.state, s.key.signs_from, s.retires_at) for s in keys.statuses()] == [
        ("current", start + ROTATION, None),
        ("previous", start, retires_at),
    ]


# Reloading: on a timer, and on meeting an unknown kid


def test_an_instance_sees_another_instances_new_key_after_its_refresh_interval(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    other = new_instance(store, clock)
    other.load()

    new = other.rotate()

    assert new is not None
    assert new.kid not in published_kids(keys)
    clock.advance(REFRESH - 1)
    assert new.kid not in published_kids(keys)
    clock.advance(1)
    assert published_kids(keys) == published_kids(other)
    assert new.kid in published_kids(keys)


def test_an_unknown_kid_makes_an_instance_reload_before_verifying(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    other = new_instance(store, clock)
    other.rotate(immediately=True)
    token = other.sign(claims_at(clock))
    assert kid_of(token) not in published_kids(keys)  # not refreshed yet: the timer is not due

    assert keys.verify(token, audience="shop")["sub"] == "sub-123"

    assert kid_of(token) in published_kids(keys)


# One key ring per algorithm


def test_each_algorithm_has_its_own_ring_and_current_key(store: Store, clock: FixedClock) -> None:
    keys = new_instance(store, clock, "ES256", "EdDSA")
    keys.load()

    assert keys.signing_algorithms() == ["RS256", "ES256", "EdDSA"]
    signed = {alg: kid_of(keys.sign(claims_at(clock), alg)) for alg in keys.signing_algorithms()}
    for alg, kid in signed.items():
        assert [key.kid for key in store.keyring.load(alg)] == [kid]
    assert sorted(published_kids(keys)) == sorted(signed.values())


def test_an_algorithm_that_is_not_enabled_has_no_keys(keys: SigningKeys, store: Store) -> None:
    assert keys.signing_algorithms() == ["RS256"]
    assert store.keyring.load("ES256") == []
    with pytest.raises(RuntimeError, match="no current ES256 signing key"):
        keys.sign({"sub": "sub-123"}, "ES256")


def test_signing_algorithms_list_only_algorithms_with_a_current_key(
    store: Store, clock: FixedClock
) -> None:
    keys = new_instance(store, clock, "ES256")
    keys.load()
    scheduled = keys.rotate("ES256")
    assert scheduled is not None
    [current] = [key for key in store.keyring.load("ES256") if key.kid != scheduled.kid]
    store.keyring.remove(current)  # an ES256 ring holding only a key that signs later

    clock.advance(REFRESH)
    assert keys.signing_algorithms() == ["RS256"]
    assert scheduled.kid in published_kids(keys)
    with pytest.raises(RuntimeError):
        keys.sign(claims_at(clock), "ES256")

    clock.advance(scheduled.signs_from - clock.now())
    assert keys.signing_algorithms() == ["RS256", "ES256"]
    assert kid_of(keys.sign(claims_at(clock), "ES256")) == scheduled.kid


# Rotating and retiring by hand


def test_rotate_schedules_a_next_key_one_lead_time_ahead_and_only_once(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    clock.advance(50)
    current_kid = kid_of(keys.sign(claims_at(clock)))

    new = keys.rotate()

    assert new is not None
    assert new.signs_from == clock.now() + LEAD
    assert keys.rotate() is None
    assert len(store.keyring.load("RS256")) == 2
    assert kid_of(keys.sign(claims_at(clock))) == current_kid
    clock.advance(LEAD)
    assert kid_of(keys.sign(claims_at(clock))) == new.kid


def test_an_emergency_rotation_signs_with_a_new_key_at_once_and_drops_the_leaked_one(
    keys: SigningKeys, store: Store, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.advance(50)
    leaked = kid_of(keys.sign(claims_at(clock)))

    with caplog.at_level(logging.WARNING, logger="oidc_link.keys"):
        new = keys.rotate(immediately=True)

    assert new is not None
    assert kid_of(keys.sign(claims_at(clock))) == new.kid
    assert published_kids(keys) == [new.kid]
    assert [key.kid for key in store.keyring.load("RS256")] == [new.kid]
    assert "Emergency rotation" in caplog.text
    assert leaked in caplog.text


def test_two_emergency_rotations_in_the_same_second_each_replace_the_key_in_use(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    first = keys.rotate(immediately=True)
    second = keys.rotate(immediately=True)

    assert first is not None and second is not None
    assert kid_of(keys.sign(claims_at(clock))) == second.kid
    assert [key.kid for key in store.keyring.load("RS256")] == [second.kid]


def test_a_previous_key_can_be_retired_by_hand_but_not_the_current_one(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    first = kid_of(keys.sign(claims_at(clock)))
    run_until(clock.now() + ROTATION, clock, keys)
    second = kid_of(keys.sign(claims_at(clock)))
    assert second != first

    with pytest.raises(ValueError, match="rotate --now"):
        keys.retire(second)
    with pytest.raises(KeyError):
        keys.retire("no-such-kid")
    retired = keys.retire(first)

    assert retired.kid == first
    assert published_kids(keys) == [second]
    assert [key.kid for key in store.keyring.load("RS256")] == [second]


# Backups and restoring


def test_an_export_holds_every_key_still_encrypted(store: Store, clock: FixedClock) -> None:
    keys = new_instance(store, clock, "EdDSA")
    keys.load()
    clock.advance(DUE)

    backup = keys.export_backup()

    assert backup["format"] == BACKUP_FORMAT
    assert backup["exported_at"] == clock.now()
    exported = [SigningKey.from_record(json.dumps(raw)) for raw in backup["keys"]]
    stored = store.keyring.load("RS256") + store.keyring.load("EdDSA")
    assert sorted(exported, key=lambda k: k.kid) == sorted(stored, key=lambda k: k.kid)
    assert len(exported) == 4  # a current and a next key for each algorithm
    assert "PRIVATE KEY" not in json.dumps(backup)


def test_an_import_restores_an_empty_redis_and_signing_goes_on_with_the_same_keys(
    store: Store, redis_client: redis.Redis, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    original = new_instance(store, clock, "ES256")
    original.load()
    clock.advance(DUE)
    backup = json.loads(json.dumps(original.export_backup()))  # as written to and read from a file
    kids = published_kids(original)
    redis_client.flushdb()

    fresh = new_instance(store, clock, "ES256")  # a new process: nothing in memory
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="oidc_link.keys"):
        assert fresh.import_backup(backup) == 4
        fresh.load()

    assert caplog.text == ""  # nothing had to be created
    assert published_kids(fresh) == kids
    assert kid_of(fresh.sign(claims_at(clock))) == kid_of(original.sign(claims_at(clock)))
    assert fresh.import_backup(backup) == 0  # a second import finds every key in place


def test_an_import_after_a_fresh_start_brings_the_old_keys_back_to_verify(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    original = new_instance(store, clock)
    original.load()
    token = original.sign(claims_at(clock))
    backup = original.export_backup()
    redis_client.flushdb()
    clock.advance(60)

    # A new process meets the empty Redis first, creates a key, and the operator then imports.
    fresh = new_instance(store, clock)
    fresh.load()
    new_kid = kid_of(fresh.sign(claims_at(clock)))

    assert fresh.import_backup(backup) == 1

    assert verifies_against(token, fresh.jwks())
    assert kid_of(fresh.sign(claims_at(clock))) == new_kid
    assert [(s.key.kid, s.state) for s in fresh.statuses()] == [
        (new_kid, "current"),
        (kid_of(token), "previous"),
    ]


def test_an_import_with_the_wrong_key_encryption_key_writes_nothing(
    keys: SigningKeys, store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    backup = keys.export_backup()
    redis_client.flushdb()

    with pytest.raises(KeyEncryptionError):
        new_instance(store, clock, kek=OTHER_KEK).import_backup(backup)

    assert ring_snapshot(redis_client) == {}


def test_something_that_is_not_a_key_backup_is_refused(
    keys: SigningKeys, redis_client: redis.Redis
) -> None:
    before = ring_snapshot(redis_client)

    with pytest.raises(ValueError, match="not an oidc-link key backup"):
        keys.import_backup({"format": "something-else", "keys": []})

    assert ring_snapshot(redis_client) == before


def test_an_instance_that_still_holds_the_keys_restores_them_into_an_empty_redis(
    keys: SigningKeys,
    store: Store,
    redis_client: redis.Redis,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock.advance(DUE)
    kids = published_kids(keys)
    stored = store.keyring.load("RS256")
    redis_client.flushdb()

    clock.advance(REFRESH)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="oidc_link.keys"):
        assert published_kids(keys) == kids

    assert store.keyring.load("RS256") == stored
    assert "Redis holds no RS256 signing keys; restoring the 2" in caplog.text
    assert "No RS256 signing key anywhere" not in caplog.text


# Racing instances on one real Redis


@pytest.fixture
def shared_redis_url(redis_server_url: str) -> str:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url  # type: ignore[misc]
    client.flushdb()


def instance_on(redis_url: str, now: int) -> SigningKeys:
    """An app instance of its own: its own Redis connection, clock and memory."""
    clock = FixedClock(now)
    return new_instance(Store(redis.Redis.from_url(redis_url, decode_responses=True), clock), clock)


def prepare_ring(redis_url: str, moment: str, start: int) -> tuple[int, list[SigningKey]]:
    """The moment to race at: the very first start, or the moment the next key is due."""
    if moment == "first start":
        return start, []
    instance_on(redis_url, start).load()
    store = Store(redis.Redis.from_url(redis_url, decode_responses=True), FixedClock(start))
    return start + DUE, store.keyring.load("RS256")


def race_in_a_process(redis_url: str, now: int, barrier: Any, results: Any) -> None:
    """One racer in a spawned process: load at the same moment as the others, then report."""
    keys = instance_on(redis_url, now)
    barrier.wait(timeout=60)
    keys.load()
    results.put((published_kids(keys), kid_of(keys.sign({"sub": "sub-123"}))))


def assert_exactly_one_new_key(
    redis_url: str, before: list[SigningKey], reports: list[tuple[list[str], str]]
) -> None:
    store = Store(redis.Redis.from_url(redis_url, decode_responses=True), FixedClock())
    after = store.keyring.load("RS256")
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1
    kids = [key.kid for key in after]
    assert all(sorted(published) == sorted(kids) for published, _ in reports)
    assert len({signing_kid for _, signing_kid in reports}) == 1  # all sign with the same key


@pytest.mark.parametrize("moment", ["first start", "next key due"])
def test_racing_instances_in_threads_create_exactly_one_new_key(
    shared_redis_url: str, moment: str
) -> None:
    now, before = prepare_ring(shared_redis_url, moment, 1_800_000_000)
    racers = 8
    instances = [instance_on(shared_redis_url, now) for _ in range(racers)]
    barrier = threading.Barrier(racers)

    def race(keys: SigningKeys) -> tuple[list[str], str]:
        barrier.wait(timeout=30)
        keys.load()
        return published_kids(keys), kid_of(keys.sign({"sub": "sub-123"}))

    with ThreadPoolExecutor(max_workers=racers) as pool:
        reports = list(pool.map(race, instances))

    assert_exactly_one_new_key(shared_redis_url, before, reports)


@pytest.mark.parametrize("moment", ["first start", "next key due"])
def test_racing_instances_in_separate_processes_create_exactly_one_new_key(
    shared_redis_url: str, moment: str
) -> None:
    now, before = prepare_ring(shared_redis_url, moment, 1_800_000_000)
    racers = 4
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(racers)
    results = context.Queue()
    processes = [
        context.Process(target=race_in_a_process, args=(shared_redis_url, now, barrier, results))
        for _ in range(racers)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert_exactly_one_new_key(shared_redis_url, before, reports)
