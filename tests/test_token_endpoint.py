"""The token endpoint: codes are short-lived, bound and single-use; clients must authenticate."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
import redis
from flask import Flask
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.models import AuthorizationCode
from oidc_link.oauth.tokens import TokenLifecycle
from oidc_link.services import build_services
from oidc_link.store import keyspace
from oidc_link.store.tokens import FAMILY_LIVE
from tests.conftest import (
    ISSUER,
    ON_REDIS_CLUSTER,
    POST_SECRET,
    SHOP_CALLBACK,
    SHOP_SECRET,
    SPA_CALLBACK,
    provider_config,
)
from tests.relying_party import PKCE, PKCE_VERIFIER, Browser, RelyingParty, query_of
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


def issued_code(
    app: Flask, console: list[str], client_id: str = "shop", **extra: str | None
) -> str:
    """Sign Jenny in at ``client_id`` and return the authorization code (PKCE_VERIFIER's,
    unless ``extra`` changes or, given None, drops the challenge)."""
    callbacks = {"shop": SHOP_CALLBACK, "spa": SPA_CALLBACK}
    browser = Browser(app, ISSUER)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": callbacks[client_id],
        "scope": "openid email",
        "state": "s",
        **PKCE,
        **extra,
    }
    params = {k: v for k, v in params.items() if v is not None}
    browser.start("/authorize?" + "&".join(f"{k}={v}" for k, v in params.items()))
    browser.submit("/email", email="jenny@example.com")
    answer = browser.submit("/code", code="000000")
    return query_of(answer.headers["Location"])["code"]


def redeem(
    app: Flask,
    code: str,
    auth: tuple[str, str] | None = ("shop", SHOP_SECRET),
    **form: str | None,
):
    """Redeem ``code`` with PKCE_VERIFIER, unless ``form`` changes it (None drops a field)."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SHOP_CALLBACK,
        "code_verifier": PKCE_VERIFIER,
        **form,
    }
    data = {k: v for k, v in data.items() if v is not None}
    return app.test_client().post("/token", data=data, auth=auth, base_url=ISSUER)


def error_of(answer: TestResponse) -> str:
    return answer.get_json()["error"]


@pytest.fixture
def legacy_app(redis_client: redis.Redis, live_clock: FixedClock, console: list[str]) -> Flask:
    """The shop client registered as a legacy confidential client: ``require_pkce = false``."""
    config = provider_config()
    config["clients"][0]["require_pkce"] = False  # type: ignore[index]
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


def test_a_code_can_be_redeemed_only_once(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    first = redeem(app, code)
    second = redeem(app, code)

    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    assert second.status_code == 400
    assert error_of(second) == "invalid_grant"


def test_a_code_expires_after_sixty_seconds(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    code = issued_code(app, console)
    live_clock.advance(60)

    assert error_of(redeem(app, code)) == "invalid_grant"


def test_a_code_redeemed_within_its_lifetime_works(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    code = issued_code(app, console)
    live_clock.advance(59)

    assert redeem(app, code).status_code == 200


def test_a_code_is_bound_to_its_client(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, auth=None, client_id="blog", client_secret=POST_SECRET)

    assert error_of(answer) == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, redirect_uri=SHOP_CALLBACK + "/other")

    assert error_of(answer) == "invalid_grant"


def test_a_code_is_bound_to_its_pkce_challenge(app: Flask, console: list[str]) -> None:
    code = issued_code(
        app, console, code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )

    assert error_of(redeem(app, code, code_verifier="w" * 50)) == "invalid_grant"


def test_a_code_issued_with_pkce_without_its_verifier_is_an_invalid_grant(
    app: Flask, console: list[str]
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, code_verifier=None)

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_grant"


@pytest.mark.parametrize("verifier", ["short", "v" * 129, "v" * 42 + "!"])
def test_a_malformed_verifier_is_an_invalid_grant(
    app: Flask, console: list[str], verifier: str
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, code_verifier=verifier)

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_grant"


def test_a_confidential_client_redeems_with_its_verifier(app: Flask, console: list[str]) -> None:
    code = issued_code(
        app, console, code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )

    assert redeem(app, code, code_verifier=VERIFIER).status_code == 200


def test_a_legacy_clients_code_without_pkce_is_redeemed_without_a_verifier(
    legacy_app: Flask, console: list[str]
) -> None:
    code = issued_code(legacy_app, console, code_challenge=None, code_challenge_method=None)

    assert redeem(legacy_app, code, code_verifier=None).status_code == 200


def test_a_verifier_for_a_code_issued_without_a_challenge_is_an_invalid_grant(
    legacy_app: Flask, console: list[str]
) -> None:
    code = issued_code(legacy_app, console, code_challenge=None, code_challenge_method=None)

    answer = redeem(legacy_app, code)

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_grant"


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("shop", "wrong-secret-0123456789"), {}),
        (("nobody", SHOP_SECRET), {}),
        (None, {"client_id": "shop", "client_secret": "wrong-secret-0123456789"}),
        (None, {"client_id": "shop"}),
        (None, {}),
        (None, {"client_id": "blog", "client_secret": "wrong-secret-0123456789"}),
        (("blog", POST_SECRET), {}),
        (None, {"client_id": "nobody", "client_secret": "any-secret-0123456789"}),
        (None, {"client_id": "nobody"}),
    ],
    ids=[
        "basic-wrong-secret",
        "basic-unknown-client",
        "post-wrong-secret",
        "confidential-without-secret",
        "no-credentials",
        "post-client-wrong-secret",
        "post-client-using-basic",
        "post-unknown-client",
        "none-unknown-client",
    ],
)
def test_wrong_client_credentials_get_401_invalid_client(
    app: Flask, console: list[str], auth: tuple[str, str] | None, form: dict[str, str]
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, auth=auth, **form)

    assert answer.status_code == 401
    assert error_of(answer) == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")


def test_invalid_client_after_http_basic_is_401_with_a_basic_challenge(
    app: Flask, console: list[str]
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, auth=("shop", "wrong-secret-0123456789"))

    assert answer.status_code == 401
    assert error_of(answer) == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("name", ["grant_type", "code", "redirect_uri", "code_verifier"])
def test_a_repeated_parameter_is_an_invalid_request_and_spends_nothing(
    app: Flask, console: list[str], name: str
) -> None:
    code = issued_code(app, console)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SHOP_CALLBACK,
        "code_verifier": PKCE_VERIFIER,
    }
    form = MultiDict([*data.items(), (name, data[name])])

    answer = app.test_client().post(
        "/token", data=form, auth=("shop", SHOP_SECRET), base_url=ISSUER
    )

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_request"
    assert f"'{name}' is repeated" in answer.get_json()["error_description"]
    assert redeem(app, code).status_code == 200


def test_a_parameter_in_both_the_query_and_the_body_is_repeated_and_spends_nothing(
    app: Flask, console: list[str]
) -> None:
    code = issued_code(app, console)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SHOP_CALLBACK,
        "code_verifier": PKCE_VERIFIER,
    }

    answer = app.test_client().post(
        "/token?code=" + code, data=form, auth=("shop", SHOP_SECRET), base_url=ISSUER
    )

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_request"
    assert "'code' is repeated" in answer.get_json()["error_description"]
    assert redeem(app, code).status_code == 200


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("shop", SHOP_SECRET), {"client_secret": SHOP_SECRET}),
        (("shop", SHOP_SECRET), {"client_assertion": "a.b.c"}),
        (None, {"client_id": "blog", "client_secret": POST_SECRET, "client_assertion": "a.b.c"}),
        (None, {"client_secret": POST_SECRET, "client_assertion_type": "x"}),
    ],
    ids=["basic-and-post", "basic-and-assertion", "post-and-assertion", "post-and-assertion-type"],
)
def test_more_than_one_client_authentication_method_is_an_invalid_request(
    app: Flask, console: list[str], auth: tuple[str, str] | None, form: dict[str, str]
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, auth=auth, **form)

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_request"
    assert "one client authentication method" in answer.get_json()["error_description"]


def test_a_client_id_in_the_body_must_name_the_client_of_the_basic_header(
    app: Flask, console: list[str]
) -> None:
    code = issued_code(app, console)

    other = redeem(app, code, client_id="blog")
    same = redeem(app, code, client_id="shop")

    assert other.status_code == 400
    assert error_of(other) == "invalid_request"
    assert same.status_code == 200


def test_a_missing_grant_type_is_an_invalid_request(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, grant_type=None)

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_request"


def test_an_unsupported_grant_type_is_refused(app: Flask) -> None:
    answer = app.test_client().post(
        "/token",
        data={"grant_type": "password", "username": "u", "password": "p"},
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert answer.status_code == 400
    assert error_of(answer) == "unsupported_grant_type"


def test_a_missing_code_is_an_invalid_request(app: Flask) -> None:
    answer = app.test_client().post(
        "/token",
        data={"grant_type": "authorization_code", "redirect_uri": SHOP_CALLBACK},
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_request"


def test_the_token_endpoint_only_accepts_post(app: Flask) -> None:
    answer = app.test_client().get("/token", base_url=ISSUER)

    assert answer.status_code == 405
    assert answer.is_json
    assert answer.headers["Allow"] == "OPTIONS, POST"  # RFC 9110 §15.5.6


def test_userinfo_without_a_token_asks_for_one(app: Flask) -> None:
    answer = app.test_client().get("/userinfo", base_url=ISSUER)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_userinfo_with_an_unknown_token_says_invalid_token(app: Flask) -> None:
    answer = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer nope"}, base_url=ISSUER
    )

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_userinfo_refuses_an_expired_access_token(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    request, callback = sign_in(browser, shop, console)
    token = shop.exchange(callback, request)
    live_clock.advance(3600)

    answer = shop.http.get(
        ISSUER + "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]}
    )

    assert answer.status_code == 401


def token_keys(redis_client: redis.Redis) -> list[str]:
    return [
        key
        for kind in ("access_token", "refresh_token")
        for key in redis_client.scan_iter(match=keyspace.pattern(kind))
    ]


@pytest.mark.parametrize(
    ("form", "description"),
    [
        (
            {"auth": None, "client_id": "blog", "client_secret": POST_SECRET},
            "Invalid 'code' in request.",
        ),
        ({"redirect_uri": SHOP_CALLBACK + "/other"}, "Invalid 'redirect_uri' in request."),
        ({"redirect_uri": None}, "Invalid 'redirect_uri' in request."),
        ({"code_verifier": None}, "Missing 'code_verifier': this code was issued with PKCE."),
        ({"code_verifier": "w" * 50}, "The 'code_verifier' does not match the 'code_challenge'."),
        ({"code_verifier": "short"}, "The 'code_verifier' does not match the 'code_challenge'."),
    ],
)
def test_a_refused_code_is_spent_and_stores_no_token(
    app: Flask,
    console: list[str],
    redis_client: redis.Redis,
    form: dict[str, str | None],
    description: str,
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, **form)  # type: ignore[arg-type]

    assert answer.status_code == 400
    assert answer.get_json() == {"error": "invalid_grant", "error_description": description}
    assert token_keys(redis_client) == []
    assert error_of(redeem(app, code)) == "invalid_grant"


def test_issuing_a_code_binds_its_family_to_the_account_and_the_session_before_it_is_redeemed(
    app: Flask, console: list[str], redis_client: redis.Redis
) -> None:
    code = issued_code(app, console)
    record = AuthorizationCode.from_record(redis_client.get(keyspace.code(code)))
    family_id = TokenLifecycle.family_of(code)

    assert record.family_id == family_id
    assert record.sid is not None
    assert redis_client.smembers(keyspace.account_families(record.subject)) == {family_id}
    assert "family:" + family_id in redis_client.smembers(keyspace.session_dependents(record.sid))
    assert redeem(app, code).status_code == 200
    assert redis_client.get(keyspace.family(family_id)) == FAMILY_LIVE


def test_the_sessions_set_gets_the_client_and_the_family_with_the_sessions_lifetime(
    app: Flask, console: list[str], redis_client: redis.Redis, settings: Settings
) -> None:
    # One SADD of both members and one EXPIRE to the session's absolute expiry (the
    # family's EXPIRE NX, a fallback for a lost set, would not have applied after it).
    code = issued_code(app, console)
    record = AuthorizationCode.from_record(redis_client.get(keyspace.code(code)))
    assert record.sid is not None
    dependents = keyspace.session_dependents(record.sid)
    lifetimes = settings.lifetimes

    assert redis_client.smembers(dependents) == {
        "client:shop",
        "family:" + TokenLifecycle.family_of(code),
    }
    assert lifetimes.session_absolute - 5 <= redis_client.ttl(dependents)
    assert redis_client.ttl(dependents) <= lifetimes.session_absolute
    assert lifetimes.refresh_token + lifetimes.code > lifetimes.session_absolute


def test_a_code_an_earlier_version_issued_has_its_family_bound_when_it_is_redeemed(
    app: Flask, console: list[str], redis_client: redis.Redis
) -> None:
    # An earlier version issued codes without a family and bound the family at /token; a
    # code it issued just before an upgrade is redeemed by this one.
    code = issued_code(app, console)
    record = AuthorizationCode.from_record(redis_client.get(keyspace.code(code)))
    assert record.sid is not None
    redis_client.set(keyspace.code(code), replace(record, family_id=None).to_record(), ex=60)
    redis_client.delete(
        keyspace.account_families(record.subject), keyspace.session_dependents(record.sid)
    )

    answer = redeem(app, code)

    family_id = TokenLifecycle.family_of(code)
    assert answer.status_code == 200
    assert redis_client.smembers(keyspace.account_families(record.subject)) == {family_id}
    assert redis_client.smembers(keyspace.session_dependents(record.sid)) == {"family:" + family_id}


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect"])
@pytest.mark.parametrize("credentials", [b"shop:\xff", b"\xff\xfe:secret", b"\xff"])
def test_basic_credentials_that_are_not_utf8_text_are_invalid_client_not_a_500(
    app: Flask, path: str, credentials: bytes
) -> None:
    header = "Basic " + base64.b64encode(credentials).decode()

    answer = app.test_client().post(
        path,
        data={"grant_type": "refresh_token", "refresh_token": "r", "token": "t"},
        headers={"Authorization": header},
        base_url=ISSUER,
    )

    assert answer.status_code == 401
    assert error_of(answer) == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith('Basic error="invalid_client"')


def test_basic_credentials_that_are_not_base64_still_get_authlibs_answer(app: Flask) -> None:
    answer = app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "r"},
        headers={"Authorization": "Basic !!!"},
        base_url=ISSUER,
    )

    assert answer.status_code == 401
    assert "cannot authenticate" in answer.get_json()["error_description"]
