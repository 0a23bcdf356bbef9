"""Client secrets given as SHA-256 hashes, two at once: a relying party authenticates at /token
with either while it switches over, and the old one stops working once it is removed."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.cli import main
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.ids import digest
from oidc_link.services import build_services
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, provider_config
from tests.relying_party import AuthorizationRequest, Browser, RelyingParty, query_of
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

OLD_SECRET = "3b1f0c6e2a9d4f8b7c5e1a0d9f3b6c2e8a4d7f1b0c9e5a3d"
NEW_SECRET = "W2xk9vQeRb7TnY4pLs1MzC8dHfA6gJu3KoXiE0wNqZ5"
CALLBACK = "https://rotating.example.test/callback"
METHODS = ("client_secret_basic", "client_secret_post")
# One client per method, each holding the secrets under test.
CLIENT_FOR = {"client_secret_basic": "rotating-basic", "client_secret_post": "rotating-post"}


def rotating_app(
    redis_client: redis.Redis, clock: FixedClock, console: list[str], **secrets: Any
) -> Flask:
    """The test provider with a client per method, each holding ``secrets``."""
    config = provider_config()
    for method in METHODS:
        client = {
            "client_id": CLIENT_FOR[method],
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": method,
            **secrets,
        }
        config["clients"].append(client)  # type: ignore[attr-defined]
    settings = settings_from_mapping(config, {"SHOP_SECRET": "s" * 32}, "test")
    services = build_services(
        settings, clock=clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


def issued(app: Flask, console: list[str], method: str) -> tuple[AuthorizationRequest, str]:
    """A sign-in at the client for ``method``: its request (PKCE verifier) and the code."""
    rp = RelyingParty(app, ISSUER, CLIENT_FOR[method], CALLBACK, "unused", auth_method=method)
    request, callback = sign_in(Browser(app, ISSUER), rp, console)
    return request, query_of(callback)["code"]


def redeem(app: Flask, console: list[str], method: str, secret: str) -> TestResponse:
    """The token request a relying party sends, authenticated by ``method`` with ``secret``."""
    request, code = issued(app, console, method)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": request.code_verifier,
    }
    auth: tuple[str, str] | None = (CLIENT_FOR[method], secret)
    if method == "client_secret_post":
        form |= {"client_id": CLIENT_FOR[method], "client_secret": secret}
        auth = None
    return app.test_client().post("/token", data=form, auth=auth, base_url=ISSUER)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("secret", [OLD_SECRET, NEW_SECRET])
def test_a_client_with_two_hashed_secrets_gets_tokens_with_either(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str], method: str, secret: str
) -> None:
    app = rotating_app(
        redis_client,
        live_clock,
        console,
        client_secret_sha256=[digest(OLD_SECRET), digest(NEW_SECRET)],
    )

    answer = redeem(app, console, method, secret)

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["id_token"]


@pytest.mark.parametrize("method", METHODS)
def test_a_secret_that_matches_neither_hash_is_refused(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str], method: str
) -> None:
    app = rotating_app(
        redis_client,
        live_clock,
        console,
        client_secret_sha256=[digest(OLD_SECRET), digest(NEW_SECRET)],
    )

    # Presenting a configured hash instead of the secret is no better than a guess.
    for wrong in (NEW_SECRET[:-1], digest(OLD_SECRET)):
        answer = redeem(app, console, method, wrong)
        assert answer.status_code == 401
        assert answer.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("method", METHODS)
def test_the_old_secret_is_refused_once_its_hash_is_removed(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str], method: str
) -> None:
    # The last step of a rotation: the configuration keeps only the new hash.
    app = rotating_app(redis_client, live_clock, console, client_secret_sha256=[digest(NEW_SECRET)])

    refused = redeem(app, console, method, OLD_SECRET)
    accepted = redeem(app, console, method, NEW_SECRET)

    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"
    assert accepted.status_code == 200


@pytest.mark.parametrize("method", METHODS)
def test_a_plain_secret_and_a_hashed_one_both_work_while_moving_to_hashes(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str], method: str
) -> None:
    app = rotating_app(
        redis_client,
        live_clock,
        console,
        client_secret=OLD_SECRET,
        client_secret_sha256=[digest(NEW_SECRET)],
    )

    assert redeem(app, console, method, OLD_SECRET).status_code == 200
    assert redeem(app, console, method, NEW_SECRET).status_code == 200


def test_hash_secret_new_client_prints_a_secret_and_the_hash_that_authenticates_it(
    redis_client: redis.Redis,
    live_clock: FixedClock,
    console: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["hash-secret", "--new", "client"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    secret, secret_hash = lines["client secret"], lines["client_secret_sha256 hash"]
    app = rotating_app(redis_client, live_clock, console, client_secret_sha256=[secret_hash])

    assert len(secret) >= 32
    assert redeem(app, console, "client_secret_basic", secret).status_code == 200
