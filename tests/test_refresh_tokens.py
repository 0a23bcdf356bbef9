"""Refresh tokens: offered with offline_access, rotated on every use, and a reused one takes
its whole family down (RFC 9700 §4.14.2), except within the short grace window.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import redis
from authlib.oidc.core.util import create_half_hash
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.models import AccessToken, Identity, RefreshToken
from oidc_link.services import build_services
from oidc_link.store import Store, keyspace
from oidc_link.store.tokens import FAMILY_LIVE, Rotation
from tests.conftest import (
    ISSUER,
    ON_REDIS_CLUSTER,
    POST_SECRET,
    SHOP_CALLBACK,
    SHOP_SECRET,
    SPA_CALLBACK,
    provider_config,
)
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in
from tests.test_store import make_code_record, redeem

# On a real Redis Cluster too: every test (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

OFFLINE = "openid email profile offline_access"
GRACE = 10
THIRTY_DAYS = 30 * 86_400
# Tokens of family fam_x, named as the store names them (on Redis Cluster each key of a
# script must share the family's slot): the one spent, and the pair a rotation issues.
RT = "fam_x.rt"
NEW_AT = "fam_x.new-at"
NEW_RT = "fam_x.new-rt"


def shop_rp(app: Flask, scope: str = OFFLINE) -> RelyingParty:
    return RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET, scope=scope)


def tokens_for(app: Flask, console: list[str], rp: RelyingParty) -> dict[str, Any]:
    """Jenny signs in at ``rp`` in a fresh browser; the RP exchanges the code."""
    request, callback = sign_in(Browser(app, ISSUER), rp, console)
    return rp.exchange(callback, request)


def refresh(
    app: Flask, refresh_token: str, auth: tuple[str, str] | None = ("shop", SHOP_SECRET), **form
) -> TestResponse:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    return app.test_client().post("/token", data=data, auth=auth, base_url=ISSUER)


def userinfo_status(app: Flask, access_token: str) -> int:
    answer = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer " + access_token}, base_url=ISSUER
    )
    return answer.status_code


def id_token_claims(rp: RelyingParty, id_token: str) -> dict[str, Any]:
    """The ID token's claims, its signature checked against the published JWKS."""
    key_set = KeySet.import_key_set(rp.http.get(rp.metadata["jwks_uri"]).json())
    return dict(jwt.decode(id_token, key_set, algorithms=["RS256"]).claims)


def test_offline_access_gives_a_refresh_token_and_a_refresh_gives_a_new_pair_and_id_token(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    shop = shop_rp(app)
    first = tokens_for(app, console, shop)
    signed_in_at = live_clock.now()
    original = id_token_claims(shop, first["id_token"])
    live_clock.advance(600)

    # Authlib's own client does the refresh, so a real client library agrees with us.
    second = dict(
        shop.session.refresh_token(shop.metadata["token_endpoint"], first["refresh_token"])
    )

    assert first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "Bearer"
    assert second["scope"] == OFFLINE
    claims = id_token_claims(shop, second["id_token"])
    # OIDC Core §12.2: same iss, sub, aud and auth_time; no nonce.
    assert claims["iss"] == original["iss"] == ISSUER
    assert claims["sub"] == original["sub"]
    assert claims["aud"] == original["aud"] == "shop"
    assert claims["auth_time"] == original["auth_time"] == signed_in_at
    assert claims["iat"] == live_clock.now()
    assert "nonce" in original
    assert "nonce" not in claims
    assert claims["email"] == "jenny@example.com"
    assert claims["at_hash"] == create_half_hash(second["access_token"], "RS256").decode()
    assert userinfo_status(app, second["access_token"]) == 200


def test_without_offline_access_there_is_no_refresh_token(app: Flask, console: list[str]) -> None:
    token = tokens_for(app, console, shop_rp(app, scope="openid email"))

    assert "refresh_token" not in token


def test_a_client_not_allowed_offline_access_gets_no_refresh_token(
    app: Flask, console: list[str]
) -> None:
    blog = RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        "client_secret_post",
        scope=OFFLINE,
    )

    token = tokens_for(app, console, blog)

    assert token["scope"] == "openid email"
    assert "refresh_token" not in token


@pytest.fixture
def opted_in_app(redis_client: redis.Redis, live_clock: FixedClock, console: list[str]) -> Flask:
    """The shop client with ``refresh_tokens = true`` in its configuration."""
    config = provider_config()
    config["clients"][0]["refresh_tokens"] = True  # type: ignore[index]
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


def test_a_client_that_opts_in_gets_refresh_tokens_without_offline_access(
    opted_in_app: Flask, console: list[str]
) -> None:
    token = tokens_for(opted_in_app, console, shop_rp(opted_in_app, scope="openid email"))

    assert token["refresh_token"]
    assert refresh(opted_in_app, token["refresh_token"]).status_code == 200


def test_a_rotated_refresh_token_stops_working_after_the_grace_window(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    first = tokens_for(app, console, shop_rp(app))
    assert refresh(app, first["refresh_token"]).status_code == 200
    live_clock.advance(GRACE + 1)

    again = refresh(app, first["refresh_token"])

    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"


def test_reusing_a_refresh_token_after_the_grace_window_revokes_the_family(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    first = tokens_for(app, console, shop_rp(app))
    second = refresh(app, first["refresh_token"]).get_json()
    live_clock.advance(GRACE + 1)

    assert refresh(app, first["refresh_token"]).get_json()["error"] == "invalid_grant"

    # Whoever held the newest refresh token (the thief or the client) is out too.
    assert refresh(app, second["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert userinfo_status(app, first["access_token"]) == 401
    assert userinfo_status(app, second["access_token"]) == 401


def test_two_refreshes_of_the_same_token_within_the_grace_window_both_succeed(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    first = tokens_for(app, console, shop_rp(app))

    one = refresh(app, first["refresh_token"])
    live_clock.advance(GRACE)
    other = refresh(app, first["refresh_token"])

    assert one.status_code == other.status_code == 200
    one_token, other_token = one.get_json(), other.get_json()
    # Each gets a pair of its own, in the same family: both keep working.
    assert one_token["refresh_token"] != other_token["refresh_token"]
    assert userinfo_status(app, one_token["access_token"]) == 200
    assert userinfo_status(app, other_token["access_token"]) == 200
    assert refresh(app, one_token["refresh_token"]).status_code == 200
    assert refresh(app, other_token["refresh_token"]).status_code == 200


def test_a_refresh_token_lives_thirty_days(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    first = tokens_for(app, console, shop_rp(app))
    live_clock.advance(THIRTY_DAYS - 1)

    assert refresh(app, first["refresh_token"]).status_code == 200


def test_a_refresh_token_expires_after_thirty_days(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    first = tokens_for(app, console, shop_rp(app))
    live_clock.advance(THIRTY_DAYS)

    assert refresh(app, first["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_each_rotation_gives_the_new_refresh_token_a_fresh_lifetime(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    token = tokens_for(app, console, shop_rp(app))
    for _ in range(3):
        live_clock.advance(THIRTY_DAYS - 1)
        answer = refresh(app, token["refresh_token"])
        assert answer.status_code == 200
        token = answer.get_json()

    assert userinfo_status(app, token["access_token"]) == 200


def test_a_refresh_by_another_client_fails_and_does_not_spend_the_token(
    app: Flask, console: list[str]
) -> None:
    first = tokens_for(app, console, shop_rp(app))

    stolen = refresh(
        app, first["refresh_token"], auth=None, client_id="blog", client_secret=POST_SECRET
    )

    assert stolen.status_code == 400
    assert stolen.get_json()["error"] == "invalid_grant"
    assert refresh(app, first["refresh_token"]).status_code == 200


def test_a_refresh_needs_the_clients_credentials(app: Flask, console: list[str]) -> None:
    first = tokens_for(app, console, shop_rp(app))

    answer = refresh(app, first["refresh_token"], auth=("shop", "wrong-secret-0123456789"))

    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"


def test_an_unknown_refresh_token_is_an_invalid_grant(app: Flask) -> None:
    assert refresh(app, "not-a-refresh-token").get_json()["error"] == "invalid_grant"


def test_an_access_token_is_not_a_refresh_token(app: Flask, console: list[str]) -> None:
    first = tokens_for(app, console, shop_rp(app))

    assert refresh(app, first["access_token"]).get_json()["error"] == "invalid_grant"


def test_a_refresh_may_narrow_the_scope_and_the_next_refresh_token_keeps_the_original(
    app: Flask, console: list[str]
) -> None:
    first = tokens_for(app, console, shop_rp(app))

    narrow = refresh(app, first["refresh_token"], scope="openid email").get_json()
    wide = refresh(app, narrow["refresh_token"]).get_json()

    assert narrow["scope"] == "openid email"
    assert wide["scope"] == OFFLINE


def test_a_refresh_asking_for_more_than_was_granted_is_refused_without_spending_the_token(
    app: Flask, console: list[str]
) -> None:
    first = tokens_for(app, console, shop_rp(app, scope="openid email offline_access"))

    wider = refresh(app, first["refresh_token"], scope="openid email profile")

    assert wider.get_json()["error"] == "invalid_scope"
    assert refresh(app, first["refresh_token"]).status_code == 200


def test_a_public_client_refreshes_with_its_client_id(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none", scope=OFFLINE)
    first = tokens_for(app, console, spa)

    second = refresh(app, first["refresh_token"], auth=None, client_id="spa")
    live_clock.advance(GRACE + 1)
    replay = refresh(app, first["refresh_token"], auth=None, client_id="spa")

    assert second.status_code == 200
    assert id_token_claims(spa, second.get_json()["id_token"])["aud"] == "spa"
    assert replay.get_json()["error"] == "invalid_grant"
    assert (
        refresh(app, second.get_json()["refresh_token"], auth=None, client_id="spa").get_json()[
            "error"
        ]
        == "invalid_grant"
    )


def test_a_replayed_code_revokes_the_tokens_issued_from_it(app: Flask, console: list[str]) -> None:
    shop = shop_rp(app)
    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    first = shop.exchange(callback, request)
    code = dict(part.split("=", 1) for part in callback.split("?", 1)[1].split("&"))["code"]

    replay = app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": SHOP_CALLBACK,
            "code_verifier": request.code_verifier,
        },
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"
    assert userinfo_status(app, first["access_token"]) == 401
    assert refresh(app, first["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_replayed_code_leaves_other_sign_ins_alone(app: Flask, console: list[str]) -> None:
    shop = shop_rp(app)
    other = tokens_for(app, console, shop)
    request, callback = sign_in(Browser(app, ISSUER), shop, console)
    shop.exchange(callback, request)
    code = dict(part.split("=", 1) for part in callback.split("?", 1)[1].split("&"))["code"]
    app.test_client().post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": SHOP_CALLBACK},
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert userinfo_status(app, other["access_token"]) == 200
    assert refresh(app, other["refresh_token"]).status_code == 200


def test_every_token_key_has_a_ttl_and_no_secret_is_stored_in_the_clear(
    app: Flask, console: list[str], redis_client: redis.Redis
) -> None:
    first = tokens_for(app, console, shop_rp(app))
    second = refresh(app, first["refresh_token"]).get_json()

    # Signing-key rings (and their record), accounts (created at sign-in), the sandbox
    # Link's sealing key (shared by every worker) and the outbox (the account's
    # account.created, until handed on) are durable on purpose (keyspace.DURABLE_KINDS).
    keys = [
        k
        for k in redis_client.scan_iter("*")
        if keyspace.kind_of(k) not in keyspace.DURABLE_KINDS
    ]
    dump = " ".join(keys + [str(redis_client.dump(k)) for k in keys])

    assert keys
    assert all(redis_client.ttl(k) > 0 for k in keys)
    for secret in (first["access_token"], first["refresh_token"], second["refresh_token"]):
        assert secret not in dump


def test_a_family_revoked_before_it_opened_stays_revoked(store: Store, clock: FixedClock) -> None:
    # A replay racing the first redemption may revoke first: taking the code, which opens
    # its family, must not undo that.
    family = keyspace.code_family("a-code")
    store.tokens.revoke_family(family, 60)
    store.tokens.save_code("a-code", make_code_record(clock))

    assert redeem(store, "a-code") == make_code_record(clock)
    assert store.tokens.family_is_live(family) is False


def test_taking_a_code_opens_its_family(store: Store, clock: FixedClock) -> None:
    store.tokens.save_code("a-code", make_code_record(clock))

    redeem(store, "a-code")

    assert store.tokens.family_is_live(keyspace.code_family("a-code")) is True


def test_a_missing_family_key_reads_as_revoked(store: Store) -> None:
    assert store.tokens.family_is_live("fam_never_opened") is False


def test_only_the_first_use_of_a_refresh_token_is_first(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    record = offline_refresh_record(clock)
    store.tokens.save_refresh_token(RT, record)
    redis_client.set(keyspace.family("fam_x"), FAMILY_LIVE, ex=60)
    clock.advance(5)
    first_use = clock.now()

    assert store.tokens.load_refresh_token(RT) == (record, None)
    assert rotate(store, RT).outcome == "rotated"
    clock.advance(5)
    assert rotate(store, RT).outcome == "rotated"  # within the grace window
    assert store.tokens.load_refresh_token(RT) == (record, first_use)


def offline_refresh_record(clock: FixedClock, family_id: str = "fam_x") -> RefreshToken:
    return RefreshToken(
        client_id="shop",
        subject="usr_x",
        scope=OFFLINE,
        identity=Identity(
            email="zoë@example.com", name='Zoë "Z" Ünal\n', auth_time=clock.now() - 7
        ),
        family_id=family_id,
        issued_at=clock.now(),
        expires_at=clock.now() + THIRTY_DAYS,
        sid="sid_x",
        claims='{"userinfo": {"name": null}, "id_token": {"acr": {"values": ["a/b"]}}}',
    )


def rotate(store: Store, token: str, client_id: str = "shop", scope: str = "") -> Rotation:
    return store.tokens.rotate_refresh_token(
        token,
        # As TokenLifecycle.rotate finds it (an unknown token's is never asked for there).
        family_id=store.tokens.family_of_token(token) or "fam_unknown",
        client_id=client_id,
        scope=scope,
        registered_scopes=OFFLINE,
        access_token=NEW_AT,
        refresh_token=NEW_RT,
        access_lifetime=3600,
        refresh_lifetime=THIRTY_DAYS,
        grace=GRACE,
        remember_revoked_for=60,
    )


def test_the_rotation_script_writes_records_that_read_back_as_the_ones_they_come_from(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    # The script copies the spent token's record on the server (cjson): every field must
    # come back as Python wrote it, with only the new token's own scope and times changed.
    record = offline_refresh_record(clock)
    store.tokens.save_refresh_token(RT, record)
    redis_client.set(keyspace.family("fam_x"), FAMILY_LIVE, ex=60)
    clock.advance(100)

    rotation = rotate(store, RT, scope="openid email")

    assert rotation == Rotation("rotated", record, "openid email")
    now = clock.now()
    refreshed, rotated_at = store.tokens.load_refresh_token(NEW_RT)
    assert refreshed == replace(record, issued_at=now, expires_at=now + THIRTY_DAYS)
    assert rotated_at is None
    assert store.tokens.load_access_token_and_family(NEW_AT) == (
        AccessToken(
            client_id="shop",
            subject="usr_x",
            scope="openid email",
            identity=record.identity,
            expires_at=now + 3600,
            family_id="fam_x",
            issued_at=now,
            sid="sid_x",
            claims=record.claims,
        ),
        True,
    )
    assert redis_client.ttl(keyspace.refresh_token(NEW_RT)) == THIRTY_DAYS
    assert redis_client.ttl(keyspace.access_token(NEW_AT)) == 3600
    assert redis_client.ttl(keyspace.family("fam_x")) == THIRTY_DAYS
    assert store.tokens.load_refresh_token(RT) == (record, now)


def test_a_refresh_token_of_a_revoked_family_is_refused_and_the_script_writes_nothing(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    store.tokens.save_refresh_token(RT, offline_refresh_record(clock))
    store.tokens.revoke_family("fam_x", 60)
    before = sorted(redis_client.scan_iter("*"))

    assert rotate(store, RT) == Rotation("invalid")
    assert rotate(store, RT, client_id="blog") == Rotation("invalid")
    assert sorted(redis_client.scan_iter("*")) == before


def test_a_refused_rotation_spends_nothing_and_a_late_reuse_revokes_the_family(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    store.tokens.save_refresh_token(RT, offline_refresh_record(clock))
    redis_client.set(keyspace.family("fam_x"), FAMILY_LIVE, ex=60)

    assert rotate(store, RT, client_id="blog") == Rotation("invalid")
    assert rotate(store, RT, scope="openid phone") == Rotation("invalid_scope")
    assert store.tokens.load_refresh_token(RT)[1] is None
    assert rotate(store, RT).outcome == "rotated"
    clock.advance(GRACE + 1)

    assert rotate(store, RT) == Rotation("reused", family_id="fam_x")
    assert store.tokens.family_is_live("fam_x") is False


def test_an_expired_refresh_token_is_refused_without_being_spent(
    store: Store, clock: FixedClock, redis_client: redis.Redis
) -> None:
    record = offline_refresh_record(clock)
    store.tokens.save_refresh_token(RT, record)
    redis_client.set(keyspace.family("fam_x"), FAMILY_LIVE)
    clock.advance(THIRTY_DAYS)

    assert rotate(store, RT) == Rotation("invalid")
    assert redis_client.exists(keyspace.refresh_used(RT)) == 0
