"""An upgrade keeps what Redis already holds: today's code reads what 868ada5 (the last landed
version) wrote.

tests/layouts/868ada5.json was written by that version's own code (tests/layouts/
record_layout.py, run once against a checkout of 868ada5): a sign-in with a refresh token,
an SSO session, a third-party consent, a /v1 account made with an Idempotency-Key, an
Account Link and the signing key ring. Each test loads those records, TTLs included, into
Redis (fakeredis and a real redis-server), builds today's app from the same configuration
with a clock at the recorded time, and uses them over HTTP only.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from tests.relying_party import Browser
from tests.sandbox_console import announced_code

RECORDING = json.loads((Path(__file__).parent / "layouts" / "868ada5.json").read_text())
ISSUER: str = RECORDING["config"]["issuer"]
HOST = urlsplit(ISSUER).hostname
BEARER: dict[str, str] = RECORDING["bearer"]
SHOP_CALLBACK = "https://shop.example.test/callback"
PARTNER_CALLBACK = "https://partner.example.test/callback"
# The cookie name 868ada5 gave the SSO session; today an https issuer says __Host-.
OLD_SESSION_COOKIE = "oidc_link_session"
NEW_SESSION_COOKIE = "__Host-oidc_link_session"


def stored(value: Any) -> str | bytes:
    """A recorded value as Redis held it (the recording wraps non-UTF-8 bytes in base64)."""
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return value


def load_recording(client: redis.Redis) -> None:
    """Write every recorded key as 868ada5 left it, with its remaining TTL."""
    pipe = client.pipeline(transaction=False)
    for key, record in RECORDING["records"].items():
        kind, value = record["type"], record["value"]
        if kind == "string":
            pipe.set(key, stored(value))
        elif kind == "hash":
            pipe.hset(key, mapping={stored(k): stored(v) for k, v in value.items()})
        elif kind == "set":
            pipe.sadd(key, *(stored(m) for m in value))
        elif kind == "zset":
            pipe.zadd(key, {stored(m): score for m, score in value})
        elif kind == "list":
            pipe.rpush(key, *(stored(item) for item in value))
        else:
            raise AssertionError(f"{key}: the loader does not know type {kind}")
        if record["ttl_ms"] is not None:
            pipe.pexpire(key, record["ttl_ms"])
    pipe.execute()


@pytest.fixture
def upgraded(redis_client: redis.Redis, console: list[str]) -> Flask:
    """Today's app on a Redis holding 868ada5's records, a minute after they were written."""
    load_recording(redis_client)
    settings = settings_from_mapping(RECORDING["config"], {}, "stored layout test")
    clock = FixedClock(RECORDING["recorded_at"] + 60)
    services = build_services(
        settings, clock=clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


def authorize(app: Flask, client_id: str, redirect_uri: str, scope: str) -> TestResponse:
    """A browser that only has the SSO cookie 868ada5 set goes to /authorize (with PKCE)."""
    browser = app.test_client()
    browser.set_cookie(OLD_SESSION_COOKIE, BEARER["session_cookie"], domain=HOST)
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "after-upgrade",
        "nonce": "nonce-after-upgrade",
        "code_challenge": BEARER["pkce_challenge"],
        "code_challenge_method": "S256",
    }
    return browser.get("/authorize", query_string=urlencode(query), base_url=ISSUER)


def redeem(app: Flask, answer: TestResponse, redirect_uri: str, client: tuple[str, str]) -> dict:
    location = answer.headers["Location"]
    assert answer.status_code == 302 and location.startswith(redirect_uri + "?"), location
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": BEARER["pkce_verifier"],
        },
        auth=client,
        base_url=ISSUER,
    )
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    return tokens.get_json()


def id_token_claims(app: Flask, id_token: str, audience: str) -> dict[str, Any]:
    """The ID token verified against the JWKS today's app publishes."""
    key_set = KeySet.import_key_set(app.test_client().get("/jwks.json", base_url=ISSUER).get_json())
    claims = jwt.decode(id_token, key_set).claims
    assert claims["iss"] == ISSUER and claims["aud"] == audience
    return claims


def shop_subject(app: Flask) -> str:
    return id_token_claims(app, RECORDING["shop_tokens"]["id_token"], "shop")["sub"]


def api(app: Flask, method: str, path: str, **kwargs: Any) -> TestResponse:
    headers = {"Authorization": f"Bearer {BEARER['api_key']}", **kwargs.pop("headers", {})}
    return app.test_client().open(path, method=method, headers=headers, base_url=ISSUER, **kwargs)


def test_the_recording_holds_every_kind_of_record_it_claims_to_and_all_are_loaded(
    upgraded: Flask, redis_client: redis.Redis
) -> None:
    kinds = {key.split(":")[2] for key in RECORDING["records"]}
    # A rate counter's window may end while the test starts; every other key must be there.
    lasting = {k: r for k, r in RECORDING["records"].items() if (r["ttl_ms"] or 60_000) >= 60_000}

    assert RECORDING["version"] == "868ada5"
    assert {
        "refresh_token",
        "access_token",
        "family",
        "session",
        "consent",
        "account",
        "idempotency",
        "link",
        "link_token",
        "keys",
    } <= kinds
    # No sign-in was left half-way: those may be lost on an upgrade and are not promised.
    assert "flow" not in kinds
    assert {key: redis_client.type(key) for key in lasting} == {
        key: record["type"] for key, record in lasting.items()
    }


def test_a_refresh_token_from_868ada5_refreshes_at_the_token_endpoint(upgraded: Flask) -> None:
    answer = upgraded.test_client().post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": RECORDING["shop_tokens"]["refresh_token"],
        },
        auth=("shop", BEARER["shop_secret"]),
        base_url=ISSUER,
    )

    assert answer.status_code == 200, answer.get_data(as_text=True)
    tokens = answer.get_json()
    assert tokens["refresh_token"] != RECORDING["shop_tokens"]["refresh_token"]
    assert tokens["scope"] == RECORDING["shop_tokens"]["scope"]
    assert id_token_claims(upgraded, tokens["id_token"], "shop")["sub"] == shop_subject(upgraded)


def test_an_access_token_from_868ada5_works_at_userinfo(upgraded: Flask) -> None:
    answer = upgraded.test_client().get(
        "/userinfo",
        headers={"Authorization": f"Bearer {RECORDING['shop_tokens']['access_token']}"},
        base_url=ISSUER,
    )

    assert answer.status_code == 200, answer.get_data(as_text=True)
    claims = answer.get_json()
    assert claims["sub"] == shop_subject(upgraded)
    assert claims["email"] == "jenny@example.com"
    assert claims["name"] == "Jenny Rosen"


def test_the_jwks_still_publishes_the_868ada5_key_and_its_id_tokens_verify(
    upgraded: Flask,
) -> None:
    published = upgraded.test_client().get("/jwks.json", base_url=ISSUER).get_json()
    (old_key,) = RECORDING["jwks"]["keys"]

    assert old_key in published["keys"]
    for tokens, audience in (
        (RECORDING["shop_tokens"], "shop"),
        (RECORDING["partner_tokens"], "partner"),
    ):
        header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
        assert header["kid"] == old_key["kid"]
        assert id_token_claims(upgraded, tokens["id_token"], audience)["nonce"]


def test_the_868ada5_session_cookie_signs_the_user_in_without_a_code_and_moves_to_the_new_name(
    upgraded: Flask,
) -> None:
    answer = authorize(upgraded, "shop", SHOP_CALLBACK, "openid email profile")

    tokens = redeem(upgraded, answer, SHOP_CALLBACK, ("shop", BEARER["shop_secret"]))
    claims = id_token_claims(upgraded, tokens["id_token"], "shop")
    assert claims["sub"] == shop_subject(upgraded)
    assert claims["auth_time"] == RECORDING["recorded_at"]
    cookies = answer.headers.getlist("Set-Cookie")
    assert any(c.startswith(f"{NEW_SESSION_COOKIE}={BEARER['session_cookie']};") for c in cookies)
    assert any(c.startswith(f"{OLD_SESSION_COOKIE}=;") for c in cookies)


def test_the_consent_given_under_868ada5_is_remembered(upgraded: Flask) -> None:
    answer = authorize(upgraded, "partner", PARTNER_CALLBACK, "openid email")

    # Straight back to the partner with a code: no consent page, no SMS.
    tokens = redeem(upgraded, answer, PARTNER_CALLBACK, ("partner", BEARER["partner_secret"]))
    old = id_token_claims(upgraded, RECORDING["partner_tokens"]["id_token"], "partner")
    assert id_token_claims(upgraded, tokens["id_token"], "partner")["sub"] == old["sub"]


def test_get_returns_the_account_868ada5_created(upgraded: Flask) -> None:
    account = RECORDING["account"]

    answer = api(upgraded, "GET", f"/v1/accounts/{account['id']}")

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == account


def test_replaying_the_868ada5_post_with_its_idempotency_key_returns_the_same_account(
    upgraded: Flask,
) -> None:
    answer = api(
        upgraded,
        "POST",
        "/v1/accounts",
        data=RECORDING["account_params"],
        headers={"Idempotency-Key": BEARER["idempotency_key"]},
    )

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Idempotent-Replayed"] == "true"
    assert answer.get_json() == RECORDING["account"]
    listed = api(upgraded, "GET", "/v1/accounts", query_string={"limit": "100"}).get_json()
    assert [a["id"] for a in listed["data"]].count(RECORDING["account"]["id"]) == 1


def test_an_account_link_made_by_868ada5_still_onboards_the_account(
    upgraded: Flask, console: list[str]
) -> None:
    browser = Browser(upgraded, ISSUER)
    account_link = RECORDING["account_link"]

    answer = browser.get(account_link["url"])
    assert answer.status_code == 303, answer.get_data(as_text=True)
    browser.get(answer.headers["Location"])
    browser.submit("/email", email=RECORDING["account"]["email"])
    answer = browser.submit("/code", code=announced_code(console))

    assert answer.status_code == 303
    assert answer.headers["Location"] == "https://shop.example.test/onboarding/done"
    account = api(upgraded, "GET", f"/v1/accounts/{RECORDING['account']['id']}").get_json()
    assert account["details_submitted"] is True
