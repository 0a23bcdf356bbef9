"""An upgrade keeps what Redis already holds: today's code reads what the landed versions
868ada5, 6490682 (issue 16's starting point) and 1fcd0cc (issue 17's: the last layout
without hash tags) wrote.

tests/layouts/<version>.json was written by that version's own code (tests/layouts/
record_layout.py, run once against a checkout of it): a sign-in with a refresh token, an SSO
session, a third-party consent, a /v1 account made with an Idempotency-Key, an Account Link
and the signing key ring. Each test loads one recording's records, TTLs included, into Redis
(fakeredis and a real redis-server), builds today's app from the same configuration with a
clock at the recorded time, and uses them over HTTP only.
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
from oidc_link.store import keyspace
from tests.conftest import ON_REDIS_CLUSTER
from tests.relying_party import Browser
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3), but for tokens from before tokens named
# their family: their keys are not in one slot, and a cluster never held them (operations.md
# "Upgrading": move to a cluster once those have been refreshed or have expired).
pytestmark = ON_REDIS_CLUSTER(
    but_not={
        # Rotates a token naming no family: its script's keys span slots on a cluster.
        "test_a_refresh_token_from_a_landed_version_refreshes_at_the_token_endpoint",
        # The same rotation, then the pair it returns.
        "test_the_pair_a_landed_versions_refresh_token_turns_into_names_its_family_and_works",
    }
)

VERSIONS = ("868ada5", "6490682", "1fcd0cc")
RECORDINGS: dict[str, dict[str, Any]] = {
    version: json.loads((Path(__file__).parent / "layouts" / f"{version}.json").read_text())
    for version in VERSIONS
}
# Both recordings were made from record_layout.py's one configuration.
ISSUER: str = RECORDINGS["868ada5"]["config"]["issuer"]
HOST = urlsplit(ISSUER).hostname
SHOP_CALLBACK = "https://shop.example.test/callback"
PARTNER_CALLBACK = "https://partner.example.test/callback"
# The cookie name 868ada5 gave the SSO session (its recording does not name it); later
# versions, and today, say __Host- for an https issuer.
OLD_SESSION_COOKIE = "oidc_link_session"
NEW_SESSION_COOKIE = "__Host-oidc_link_session"


@pytest.fixture(params=VERSIONS)
def recording(request: pytest.FixtureRequest) -> dict[str, Any]:
    return RECORDINGS[request.param]


def stored(value: Any) -> str | bytes:
    """A recorded value as Redis held it (the recording wraps non-UTF-8 bytes in base64)."""
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return value


def load_recording(client: redis.Redis, recording: dict[str, Any]) -> None:
    """Write every recorded key as its version left it, with its remaining TTL."""
    pipe = client.pipeline(transaction=False)
    for key, record in recording["records"].items():
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
def upgraded(redis_client: redis.Redis, console: list[str], recording: dict[str, Any]) -> Flask:
    """Today's app on a Redis holding a version's records, a minute after they were written."""
    load_recording(redis_client, recording)
    settings = settings_from_mapping(recording["config"], {}, "stored layout test")
    clock = FixedClock(recording["recorded_at"] + 60)
    services = build_services(
        settings, clock=clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


def session_cookie_name(recording: dict[str, Any]) -> str:
    return recording["bearer"].get("session_cookie_name", OLD_SESSION_COOKIE)


def authorize(
    app: Flask, recording: dict[str, Any], client_id: str, redirect_uri: str, scope: str
) -> TestResponse:
    """A browser that only has the SSO cookie the version set goes to /authorize (PKCE)."""
    browser = app.test_client()
    bearer = recording["bearer"]
    browser.set_cookie(session_cookie_name(recording), bearer["session_cookie"], domain=HOST)
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "after-upgrade",
        "nonce": "nonce-after-upgrade",
        "code_challenge": bearer["pkce_challenge"],
        "code_challenge_method": "S256",
    }
    return browser.get("/authorize", query_string=urlencode(query), base_url=ISSUER)


def redeem(
    app: Flask,
    recording: dict[str, Any],
    answer: TestResponse,
    redirect_uri: str,
    client: tuple[str, str],
) -> dict:
    location = answer.headers["Location"]
    assert answer.status_code == 302 and location.startswith(redirect_uri + "?"), location
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": recording["bearer"]["pkce_verifier"],
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


def shop_subject(app: Flask, recording: dict[str, Any]) -> str:
    return id_token_claims(app, recording["shop_tokens"]["id_token"], "shop")["sub"]


def api(
    app: Flask, recording: dict[str, Any], method: str, path: str, **kwargs: Any
) -> TestResponse:
    bearer = f"Bearer {recording['bearer']['api_key']}"
    headers = {"Authorization": bearer, **kwargs.pop("headers", {})}
    return app.test_client().open(path, method=method, headers=headers, base_url=ISSUER, **kwargs)


def test_the_recording_holds_every_kind_of_record_it_claims_to_and_all_are_loaded(
    upgraded: Flask, recording: dict[str, Any], redis_client: redis.Redis
) -> None:
    kinds = {key.split(":")[2] for key in recording["records"]}
    # A rate counter's window may end while the test starts; every other key must be there.
    lasting = {k: r for k, r in recording["records"].items() if (r["ttl_ms"] or 60_000) >= 60_000}

    assert recording["version"] in VERSIONS
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


def test_a_refresh_token_from_a_landed_version_refreshes_at_the_token_endpoint(
    upgraded: Flask, recording: dict[str, Any]
) -> None:
    answer = upgraded.test_client().post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": recording["shop_tokens"]["refresh_token"],
        },
        auth=("shop", recording["bearer"]["shop_secret"]),
        base_url=ISSUER,
    )

    assert answer.status_code == 200, answer.get_data(as_text=True)
    tokens = answer.get_json()
    assert tokens["refresh_token"] != recording["shop_tokens"]["refresh_token"]
    assert tokens["scope"] == recording["shop_tokens"]["scope"]
    assert id_token_claims(upgraded, tokens["id_token"], "shop")["sub"] == shop_subject(
        upgraded, recording
    )


def test_the_pair_a_landed_versions_refresh_token_turns_into_names_its_family_and_works(
    upgraded: Flask, recording: dict[str, Any], redis_client: redis.Redis
) -> None:
    # Tokens from before issue 17 name no family (their keys are untagged); the pair their
    # refresh returns names it, so its keys share the family's slot, and it works in turn.
    def refresh(token: str) -> dict[str, Any]:
        answer = upgraded.test_client().post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=("shop", recording["bearer"]["shop_secret"]),
            base_url=ISSUER,
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    old = recording["shop_tokens"]["refresh_token"]
    family_id = old_family(recording, old)
    family_key = keyspace.family(family_id)

    first = refresh(old)
    second = refresh(first["refresh_token"])
    userinfo = upgraded.test_client().get(
        "/userinfo",
        headers={"Authorization": f"Bearer {second['access_token']}"},
        base_url=ISSUER,
    )

    assert family_key in recording["records"]  # the family kept its name
    assert keyspace.token_family(old) is None
    assert keyspace.token_family(first["refresh_token"]) == family_id
    assert keyspace.token_family(second["access_token"]) == family_id
    assert userinfo.status_code == 200, userinfo.get_data(as_text=True)
    assert redis_client.get(family_key) == "live"
    tagged = set(redis_client.scan_iter(match="*{" + family_key + "}*"))
    assert {key.split(":")[2] for key in tagged} >= {"access_token", "refresh_token"}


def old_family(recording: dict[str, Any], refresh_token: str) -> str:
    """The family id in the record a landed version stored for ``refresh_token``."""
    record = recording["records"][keyspace.refresh_token(refresh_token)]
    return json.loads(stored(record["value"]))["family_id"]


def test_an_access_token_from_a_landed_version_works_at_userinfo(
    upgraded: Flask, recording: dict[str, Any]
) -> None:
    answer = upgraded.test_client().get(
        "/userinfo",
        headers={"Authorization": f"Bearer {recording['shop_tokens']['access_token']}"},
        base_url=ISSUER,
    )

    assert answer.status_code == 200, answer.get_data(as_text=True)
    claims = answer.get_json()
    assert claims["sub"] == shop_subject(upgraded, recording)
    assert claims["email"] == "jenny@example.com"
    assert claims["name"] == "Jenny Rosen"


def test_the_jwks_still_publishes_the_landed_versions_key_and_its_id_tokens_verify(
    upgraded: Flask,
    recording: dict[str, Any],
) -> None:
    published = upgraded.test_client().get("/jwks.json", base_url=ISSUER).get_json()
    (old_key,) = recording["jwks"]["keys"]

    assert old_key in published["keys"]
    for tokens, audience in (
        (recording["shop_tokens"], "shop"),
        (recording["partner_tokens"], "partner"),
    ):
        header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
        assert header["kid"] == old_key["kid"]
        assert id_token_claims(upgraded, tokens["id_token"], audience)["nonce"]


def test_the_versions_session_cookie_signs_the_user_in_without_a_code_under_todays_name(
    upgraded: Flask,
    recording: dict[str, Any],
) -> None:
    answer = authorize(upgraded, recording, "shop", SHOP_CALLBACK, "openid email profile")

    tokens = redeem(
        upgraded, recording, answer, SHOP_CALLBACK, ("shop", recording["bearer"]["shop_secret"])
    )
    claims = id_token_claims(upgraded, tokens["id_token"], "shop")
    assert claims["sub"] == shop_subject(upgraded, recording)
    assert claims["auth_time"] == recording["recorded_at"]
    cookies = answer.headers.getlist("Set-Cookie")
    session_cookies = {
        name: rest.split(";")[0]
        for name, _, rest in (cookie.partition("=") for cookie in cookies)
        if name in (OLD_SESSION_COOKIE, NEW_SESSION_COOKIE)
    }
    # 868ada5's cookie moves to today's name and the old one is cleared; a cookie that already
    # has today's name is left as it is.
    moved = {NEW_SESSION_COOKIE: recording["bearer"]["session_cookie"], OLD_SESSION_COOKIE: ""}
    assert session_cookies == (
        moved if session_cookie_name(recording) == OLD_SESSION_COOKIE else {}
    )


def test_the_consent_given_under_a_landed_version_is_remembered(
    upgraded: Flask, recording: dict[str, Any]
) -> None:
    answer = authorize(upgraded, recording, "partner", PARTNER_CALLBACK, "openid email")

    # Straight back to the partner with a code: no consent page, no SMS.
    tokens = redeem(
        upgraded,
        recording,
        answer,
        PARTNER_CALLBACK,
        ("partner", recording["bearer"]["partner_secret"]),
    )
    old = id_token_claims(upgraded, recording["partner_tokens"]["id_token"], "partner")
    assert id_token_claims(upgraded, tokens["id_token"], "partner")["sub"] == old["sub"]


def test_get_returns_the_account_a_landed_version_created(
    upgraded: Flask, recording: dict[str, Any]
) -> None:
    account = recording["account"]

    answer = api(upgraded, recording, "GET", f"/v1/accounts/{account['id']}")

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == account


def test_replaying_the_landed_versions_post_with_its_idempotency_key_returns_the_same_account(
    upgraded: Flask,
    recording: dict[str, Any],
) -> None:
    answer = api(
        upgraded,
        recording,
        "POST",
        "/v1/accounts",
        data=recording["account_params"],
        headers={"Idempotency-Key": recording["bearer"]["idempotency_key"]},
    )

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Idempotent-Replayed"] == "true"
    assert answer.get_json() == recording["account"]
    listed = api(
        upgraded, recording, "GET", "/v1/accounts", query_string={"limit": "100"}
    ).get_json()
    assert [a["id"] for a in listed["data"]].count(recording["account"]["id"]) == 1


def test_an_account_link_made_by_a_landed_version_still_onboards_the_account(
    upgraded: Flask, recording: dict[str, Any], console: list[str]
) -> None:
    browser = Browser(upgraded, ISSUER)
    account_link = recording["account_link"]

    answer = browser.get(account_link["url"])
    assert answer.status_code == 303, answer.get_data(as_text=True)
    browser.get(answer.headers["Location"])
    browser.submit("/email", email=recording["account"]["email"])
    answer = browser.submit("/code", code=announced_code(console))

    assert answer.status_code == 303
    assert answer.headers["Location"] == "https://shop.example.test/onboarding/done"
    account = api(
        upgraded, recording, "GET", f"/v1/accounts/{recording['account']['id']}"
    ).get_json()
    assert account["details_submitted"] is True
