"""Idempotency-Key on /v1 POSTs: replay, mismatch, in-flight conflict, scope and expiry."""

from __future__ import annotations

import threading

import pytest
import redis
from flask import Flask

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.ids import digest
from oidc_link.platform.idempotency import REPLAY_SECONDS, Idempotency, Started, fingerprint
from oidc_link.store import Store, keyspace
from tests.api_client import ACME_APP_KEY, ACME_WEB_KEY, SHOP_KEY, Platform, api_settings
from tests.conftest import ON_REDIS_CLUSTER

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def shop_api(app: Flask) -> Platform:
    return Platform(app, SHOP_KEY)


def account_count(platform: Platform) -> int:
    return len(platform.get("/v1/accounts", {"limit": "100"}).get_json()["data"])


def test_the_same_key_and_parameters_replay_the_first_response(shop_api: Platform) -> None:
    params = {"type": "express", "email": "jenny@example.com"}
    first = shop_api.post("/v1/accounts", params, idempotency_key="order-6735")
    again = shop_api.post("/v1/accounts", params, idempotency_key="order-6735")

    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Request-Id"] != first.headers["Request-Id"]
    assert account_count(shop_api) == 1


def test_a_json_body_with_the_same_parameters_replays_too(shop_api: Platform) -> None:
    first = shop_api.post(
        "/v1/accounts", {"type": "custom", "metadata[a]": "1"}, idempotency_key="k"
    )
    again = shop_api.post(
        "/v1/accounts", json={"type": "custom", "metadata": {"a": "1"}}, idempotency_key="k"
    )

    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]


def test_the_same_key_with_other_parameters_is_an_idempotency_error(
    shop_api: Platform,
) -> None:
    shop_api.post("/v1/accounts", {"type": "express"}, idempotency_key="order-1")

    response = shop_api.post("/v1/accounts", {"type": "custom"}, idempotency_key="order-1")

    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "idempotency_error"
    assert account_count(shop_api) == 1


def test_a_request_that_fails_validation_is_not_stored(shop_api: Platform) -> None:
    refused = shop_api.post("/v1/accounts", {"type": "standard"}, idempotency_key="order-2")
    fixed = shop_api.post("/v1/accounts", {"type": "express"}, idempotency_key="order-2")

    assert refused.status_code == 400
    assert refused.get_json()["error"]["type"] == "invalid_request_error"
    assert fixed.status_code == 200
    assert "Idempotent-Replayed" not in fixed.headers


def test_keys_are_scoped_to_the_api_key(app: Flask) -> None:
    # Two clients of one owner share accounts, but not idempotency keys.
    web, mobile = Platform(app, ACME_WEB_KEY), Platform(app, ACME_APP_KEY)

    first = web.post("/v1/accounts", {"type": "express"}, idempotency_key="same-key")
    second = mobile.post("/v1/accounts", {"type": "express"}, idempotency_key="same-key")

    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["id"] != first.get_json()["id"]
    assert account_count(web) == 2


def test_a_key_in_use_by_a_running_request_is_a_conflict(
    app: Flask, redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    # A request holding the key (started, not finished), as a slow first request would.
    params = {"type": "express"}
    idempotency = Idempotency(Store(redis_client, live_clock))
    started = idempotency.begin(
        digest(SHOP_KEY), "slow-key", fingerprint("POST", "/v1/accounts", params), SHOP_KEY
    )
    assert isinstance(started, Started)
    shop_api = Platform(app, SHOP_KEY)

    response = shop_api.post("/v1/accounts", params, idempotency_key="slow-key")

    assert response.status_code == 409
    assert response.get_json()["error"]["type"] == "idempotency_error"
    assert response.get_json()["error"]["code"] == "idempotency_key_in_use"
    idempotency.abandon(digest(SHOP_KEY), "slow-key", started)
    assert shop_api.post("/v1/accounts", params, idempotency_key="slow-key").status_code == 200


def test_two_simultaneous_posts_with_one_key_create_one_account(app: Flask) -> None:
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str | None, str | None]] = []

    def post() -> None:
        platform = Platform(app, SHOP_KEY)
        barrier.wait()
        response = platform.post("/v1/accounts", {"type": "express"}, idempotency_key="race")
        body = response.get_json()
        answers.append(
            (response.status_code, response.headers.get("Idempotent-Replayed"), body.get("id"))
        )

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    statuses = sorted(status for status, _, _ in answers)
    fresh = [a for a in answers if a[0] == 200 and a[1] is None]
    assert len(fresh) == 1
    assert statuses in ([200, 200], [200, 409])
    if statuses == [200, 200]:
        # The second saw the finished first one: a replay of the same account.
        assert answers[0][2] == answers[1][2]
    assert account_count(Platform(app, SHOP_KEY)) == 1


def test_a_key_is_forgotten_after_twenty_four_hours(
    shop_api: Platform, redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    shop_api.post("/v1/accounts", {"type": "express"}, idempotency_key="daily")
    keys = [k for k in redis_client.scan_iter(keyspace.pattern("idempotency"))]

    assert len(keys) == 1
    assert REPLAY_SECONDS - 5 <= redis_client.ttl(keys[0]) <= REPLAY_SECONDS
    assert digest(SHOP_KEY) in keys[0]
    assert "daily" not in keys[0]


def test_an_overlong_idempotency_key_is_refused(shop_api: Platform) -> None:
    response = shop_api.post("/v1/accounts", {"type": "express"}, idempotency_key="k" * 256)

    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "invalid_request_error"
    assert account_count(shop_api) == 0


def test_a_replay_is_only_for_the_endpoint_it_was_first_used_on(shop_api: Platform) -> None:
    account = shop_api.create_account()
    fingerprints = {
        fingerprint("POST", "/v1/accounts", {"type": "express"}),
        fingerprint("POST", f"/v1/accounts/{account['id']}", {"type": "express"}),
    }

    assert len(fingerprints) == 2
