"""Revocation (RFC 7009) and introspection (RFC 7662): clients authenticate, act on their own
tokens only, and a revoked token is dead everywhere (/userinfo, /token, /introspect).

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, POST_SECRET, SHOP_SECRET, SPA_CALLBACK
from tests.relying_party import RelyingParty
from tests.test_refresh_tokens import (
    GRACE,
    OFFLINE,
    refresh,
    shop_rp,
    tokens_for,
    userinfo_status,
)

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

SHOP = ("shop", SHOP_SECRET)


def post(
    app: Flask, path: str, token: str, auth: tuple[str, str] | None = SHOP, **form: str
) -> TestResponse:
    return app.test_client().post(path, data={"token": token, **form}, auth=auth, base_url=ISSUER)


def introspect(app: Flask, token: str, **kwargs: Any) -> dict[str, Any]:
    answer = post(app, "/introspect", token, **kwargs)
    assert answer.status_code == 200
    return answer.get_json()


@pytest.fixture
def shop_tokens(app: Flask, console: list[str]) -> dict[str, Any]:
    return tokens_for(app, console, shop_rp(app))


# Revocation.


def test_revoking_a_refresh_token_with_oauth2session_revokes_its_family(
    app: Flask, console: list[str]
) -> None:
    shop = shop_rp(app)
    token = tokens_for(app, console, shop)

    answer = shop.session.revoke_token(
        shop.metadata["revocation_endpoint"],
        token["refresh_token"],
        token_type_hint="refresh_token",
    )

    assert answer.status_code == 200
    assert refresh(app, token["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert userinfo_status(app, token["access_token"]) == 401


def test_revoking_a_refresh_token_also_ends_the_pairs_rotated_from_it(
    app: Flask, shop_tokens: dict[str, Any]
) -> None:
    newer = refresh(app, shop_tokens["refresh_token"]).get_json()

    assert post(app, "/revoke", shop_tokens["refresh_token"]).status_code == 200

    assert refresh(app, newer["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert userinfo_status(app, newer["access_token"]) == 401


def test_revoking_an_access_token_leaves_the_refresh_token_working(
    app: Flask, shop_tokens: dict[str, Any]
) -> None:
    answer = post(app, "/revoke", shop_tokens["access_token"], token_type_hint="access_token")

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert userinfo_status(app, shop_tokens["access_token"]) == 401
    assert refresh(app, shop_tokens["refresh_token"]).status_code == 200


def test_a_wrong_token_type_hint_still_finds_the_token(
    app: Flask, shop_tokens: dict[str, Any]
) -> None:
    post(app, "/revoke", shop_tokens["refresh_token"], token_type_hint="access_token")

    assert refresh(app, shop_tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_revoking_another_clients_token_answers_200_and_changes_nothing(
    app: Flask, shop_tokens: dict[str, Any]
) -> None:
    for token in (shop_tokens["access_token"], shop_tokens["refresh_token"]):
        answer = post(app, "/revoke", token, auth=None, client_id="blog", client_secret=POST_SECRET)
        assert answer.status_code == 200

    assert userinfo_status(app, shop_tokens["access_token"]) == 200
    assert refresh(app, shop_tokens["refresh_token"]).status_code == 200


def test_revoking_an_unknown_token_answers_200(app: Flask) -> None:
    assert post(app, "/revoke", "never-issued").status_code == 200


def test_revoking_twice_answers_200_both_times(app: Flask, shop_tokens: dict[str, Any]) -> None:
    assert post(app, "/revoke", shop_tokens["refresh_token"]).status_code == 200
    assert post(app, "/revoke", shop_tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("shop", "wrong-secret-0123456789"), {}),
        (None, {}),
        (None, {"client_id": "shop"}),
        (("blog", POST_SECRET), {}),
    ],
    ids=["wrong-secret", "no-credentials", "confidential-client-without-secret", "wrong-method"],
)
def test_revocation_needs_the_clients_own_authentication(
    app: Flask, shop_tokens: dict[str, Any], auth: tuple[str, str] | None, form: dict[str, str]
) -> None:
    answer = post(app, "/revoke", shop_tokens["access_token"], auth=auth, **form)

    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"
    assert userinfo_status(app, shop_tokens["access_token"]) == 200


def test_a_public_client_revokes_its_own_token_with_its_client_id(
    app: Flask, console: list[str]
) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none", scope=OFFLINE)
    token = tokens_for(app, console, spa)

    answer = post(app, "/revoke", token["refresh_token"], auth=None, client_id="spa")

    assert answer.status_code == 200
    assert userinfo_status(app, token["access_token"]) == 401


def test_revocation_without_a_token_is_an_invalid_request(app: Flask) -> None:
    answer = app.test_client().post("/revoke", data={}, auth=SHOP, base_url=ISSUER)

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"


def test_an_unknown_token_type_hint_is_ignored(app: Flask, shop_tokens: dict[str, Any]) -> None:
    answer = post(app, "/revoke", shop_tokens["refresh_token"], token_type_hint="id_token")

    assert answer.status_code == 200
    assert refresh(app, shop_tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_introspection_without_a_token_is_an_invalid_request(app: Flask) -> None:
    answer = app.test_client().post("/introspect", data={}, auth=SHOP, base_url=ISSUER)

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_a_repeated_parameter_is_an_invalid_request_that_changes_nothing(
    app: Flask, shop_tokens: dict[str, Any], path: str
) -> None:
    token = shop_tokens["access_token"]
    form = MultiDict([("token", token), ("token", token)])

    answer = app.test_client().post(path, data=form, auth=SHOP, base_url=ISSUER)

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"
    assert userinfo_status(app, token) == 200


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_two_client_authentication_methods_are_an_invalid_request(
    app: Flask, shop_tokens: dict[str, Any], path: str
) -> None:
    """RFC 7009 §2.2.1 and RFC 7662 §2.3 answer with RFC 6749 §5.2's errors (§2.3: one
    method per request)."""
    token = shop_tokens["access_token"]

    answer = post(app, path, token, client_secret=SHOP_SECRET)

    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"
    assert userinfo_status(app, token) == 200


def test_revocation_only_accepts_post(app: Flask) -> None:
    answer = app.test_client().get("/revoke", base_url=ISSUER)

    assert answer.status_code == 405
    assert answer.is_json


# Introspection.


def test_introspection_describes_an_active_access_token(
    app: Flask, shop_tokens: dict[str, Any], live_clock: FixedClock
) -> None:
    answer = introspect(app, shop_tokens["access_token"])

    assert answer["active"] is True
    assert answer["client_id"] == "shop"
    assert answer["aud"] == "shop"
    assert answer["iss"] == ISSUER
    assert answer["token_type"] == "Bearer"
    assert answer["scope"] == OFFLINE
    assert answer["sub"].startswith("acct_")
    assert answer["iat"] == live_clock.now()
    assert answer["exp"] == live_clock.now() + 3600
    assert "email" not in answer


def test_introspection_describes_an_active_refresh_token(
    app: Flask, shop_tokens: dict[str, Any], live_clock: FixedClock
) -> None:
    answer = introspect(app, shop_tokens["refresh_token"], token_type_hint="refresh_token")

    assert answer["active"] is True
    assert answer["client_id"] == "shop"
    assert answer["exp"] == live_clock.now() + 30 * 86_400
    assert "token_type" not in answer


def test_introspection_of_another_clients_token_says_inactive(
    app: Flask, shop_tokens: dict[str, Any]
) -> None:
    answer = introspect(
        app, shop_tokens["access_token"], auth=None, client_id="blog", client_secret=POST_SECRET
    )

    assert answer == {"active": False}


def test_introspection_of_an_unknown_token_says_inactive(app: Flask) -> None:
    assert introspect(app, "never-issued") == {"active": False}


def test_revoked_tokens_are_inactive(app: Flask, shop_tokens: dict[str, Any]) -> None:
    post(app, "/revoke", shop_tokens["refresh_token"])

    assert introspect(app, shop_tokens["refresh_token"]) == {"active": False}
    assert introspect(app, shop_tokens["access_token"]) == {"active": False}


def test_an_expired_access_token_is_inactive(
    app: Flask, shop_tokens: dict[str, Any], live_clock: FixedClock
) -> None:
    live_clock.advance(3600)

    assert introspect(app, shop_tokens["access_token"]) == {"active": False}
    assert introspect(app, shop_tokens["refresh_token"])["active"] is True


def test_a_rotated_refresh_token_is_inactive_and_its_successor_active(
    app: Flask, shop_tokens: dict[str, Any], live_clock: FixedClock
) -> None:
    newer = refresh(app, shop_tokens["refresh_token"]).get_json()
    live_clock.advance(GRACE + 1)

    assert introspect(app, shop_tokens["refresh_token"]) == {"active": False}
    assert introspect(app, newer["refresh_token"])["active"] is True
    # Introspecting an old token is not a replay: the family lives on.
    assert introspect(app, newer["access_token"])["active"] is True


def test_a_public_client_cannot_introspect(app: Flask, console: list[str]) -> None:
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none", scope=OFFLINE)
    token = tokens_for(app, console, spa)

    answer = post(app, "/introspect", token["access_token"], auth=None, client_id="spa")

    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"


def test_introspection_needs_client_authentication(app: Flask, shop_tokens: dict[str, Any]) -> None:
    answer = post(app, "/introspect", shop_tokens["access_token"], auth=None)

    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"


# Discovery.


def test_discovery_advertises_refresh_revocation_and_introspection(app: Flask) -> None:
    document = app.test_client().get("/.well-known/openid-configuration", base_url=ISSUER)
    metadata = document.get_json()

    assert "offline_access" in metadata["scopes_supported"]
    assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert metadata["revocation_endpoint"] == ISSUER + "/revoke"
    assert metadata["revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ]
    assert metadata["introspection_endpoint"] == ISSUER + "/introspect"
    assert metadata["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
