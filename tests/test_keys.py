"""The ID-token signing key on fakeredis and a real redis-server: created once and shared,
kid is the RFC 7638 thumbprint, the JWKS is public-only, and signatures verify with PyJWT."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa

from oidc_link.clock import FixedClock
from oidc_link.keys import ALGORITHM, SigningKeys, generate_signing_key, jwk_thumbprint
from oidc_link.store import PREFIX, Store

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}

# RFC 7638 §3.1: the example RSA key and its published thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM"
    "4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def signing_key_names(client: redis.Redis) -> list[str]:
    return list(client.scan_iter(PREFIX + "signing_key:*"))


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace."""
    required = {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


@pytest.fixture
def keys(store: Store, clock: FixedClock) -> SigningKeys:
    return SigningKeys(store, clock)


# Lifecycle, on both Redis kinds


def test_an_empty_store_gets_one_new_key(
    keys: SigningKeys, store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    assert store.load_signing_key(ALGORITHM) is None

    kid = keys.kid

    stored = store.load_signing_key(ALGORITHM)
    assert stored is not None
    assert stored.kid == kid
    assert stored.created_at == clock.now()
    assert signing_key_names(redis_client) == [PREFIX + "signing_key:RS256"]


def test_a_second_instance_on_the_same_store_reuses_the_key(
    keys: SigningKeys, store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    first_kid = keys.kid
    clock.advance(86_400)

    again = SigningKeys(store, clock)

    assert again.kid == first_kid
    assert again.jwks() == keys.jwks()
    assert len(signing_key_names(redis_client)) == 1


def test_a_key_signed_by_one_instance_verifies_with_another_instances_jwks(
    keys: SigningKeys, store: Store, clock: FixedClock
) -> None:
    token = keys.sign({"sub": "sub-123"})

    public = jwt.PyJWK(SigningKeys(store, clock).jwks()["keys"][0])

    assert jwt.decode(token, public.key, algorithms=[ALGORITHM])["sub"] == "sub-123"


def test_racing_instances_end_with_exactly_one_key(
    store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    racers = 6
    barrier = threading.Barrier(racers)

    def load_kid() -> str:
        instance = SigningKeys(store, clock)
        barrier.wait(timeout=30)
        instance.load()
        return instance.kid

    with ThreadPoolExecutor(max_workers=racers) as pool:
        kids = list(pool.map(lambda _: load_kid(), range(racers)))

    stored = store.load_signing_key(ALGORITHM)
    assert stored is not None
    assert set(kids) == {stored.kid}
    assert len(signing_key_names(redis_client)) == 1


def test_the_signing_key_has_no_ttl(keys: SigningKeys, redis_client: redis.Redis) -> None:
    keys.load()

    assert redis_client.ttl(PREFIX + "signing_key:RS256") == -1


# kid and JWKS


def test_the_kid_is_the_rfc7638_thumbprint_of_the_public_jwk(keys: SigningKeys) -> None:
    [jwk] = keys.jwks()["keys"]

    assert jwk["kid"] == thumbprint(jwk)
    assert jwk["kid"] == keys.kid


def test_jwk_thumbprint_matches_the_rfc7638_example() -> None:
    example = {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}

    assert thumbprint(example) == RFC7638_THUMBPRINT
    assert jwk_thumbprint(example) == RFC7638_THUMBPRINT


def test_the_jwks_publishes_the_public_key_only(keys: SigningKeys) -> None:
    jwks = keys.jwks()

    assert list(jwks) == ["keys"]
    [jwk] = jwks["keys"]
    assert not PRIVATE_MEMBERS & set(jwk)
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert b64url_int(jwk["e"]) == 65537
    assert b64url_int(jwk["n"]).bit_length() == 2048


def test_the_published_key_matches_the_stored_private_key(keys: SigningKeys, store: Store) -> None:
    [jwk] = keys.jwks()["keys"]
    stored = store.load_signing_key(ALGORITHM)
    assert stored is not None

    public = jwt.PyJWK(jwk).key

    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers().n == b64url_int(jwk["n"])
    assert stored.public_jwk == {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}
    assert "PRIVATE KEY" in stored.private_pem


def test_generated_keys_are_distinct_and_carry_their_thumbprint() -> None:
    first = generate_signing_key(created_at=1)
    second = generate_signing_key(created_at=2)

    assert first.kid != second.kid
    assert first.kid == thumbprint(first.public_jwk)
    assert first.alg == "RS256"
    assert not PRIVATE_MEMBERS & set(first.public_jwk)


# Signing


def test_a_signed_token_verifies_against_the_jwks_and_carries_the_kid(
    keys: SigningKeys, clock: FixedClock
) -> None:
    claims = {
        "iss": "https://login.example.com",
        "sub": "sub-123",
        "aud": "shop",
        "iat": clock.now(),
        "exp": clock.now() + 3600,
    }

    token = keys.sign(claims)

    header = jwt.get_unverified_header(token)
    assert header["kid"] == keys.kid
    assert header["alg"] == "RS256"
    [jwk] = keys.jwks()["keys"]
    public = jwt.PyJWK(jwk)
    decoded = jwt.decode(
        token,
        public.key,
        algorithms=["RS256"],
        audience="shop",
        issuer="https://login.example.com",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert decoded == claims


def test_a_tampered_token_does_not_verify(keys: SigningKeys) -> None:
    token = keys.sign({"sub": "sub-123"})
    header, _payload, signature = token.split(".")
    forged_payload = base64.urlsafe_b64encode(b'{"sub":"someone-else"}').rstrip(b"=").decode()
    public = jwt.PyJWK(keys.jwks()["keys"][0])

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{header}.{forged_payload}.{signature}", public.key, algorithms=["RS256"])


def test_a_token_from_another_key_does_not_verify(
    keys: SigningKeys, embedded_redis: redis.Redis, clock: FixedClock
) -> None:
    other = SigningKeys(Store(embedded_redis, clock), clock)
    token = other.sign({"sub": "sub-123"})
    public = jwt.PyJWK(keys.jwks()["keys"][0])

    assert other.kid != keys.kid
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, public.key, algorithms=["RS256"])
