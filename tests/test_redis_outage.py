"""What users and relying parties meet while Redis is unreachable: hosted pages and protocol
endpoints answer 503 with Retry-After, discovery and JWKS keep serving from memory, and
everything works again once Redis is back. A real redis-server is killed and restarted."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.errors import StoreUnavailableError
from oidc_link.keys import OUTAGE_RETRY_INTERVAL
from oidc_link.services import Services, build_services
from oidc_link.store import Store, connect
from oidc_link.store.connection import REDIS_RETRIES, REDIS_TIMEOUT
from tests.api_client import SHOP_KEY, Platform, api_settings
from tests.conftest import ISSUER, SHOP_CALLBACK, SHOP_SECRET
from tests.redis_process import RedisProcess, stoppable_redis
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in
from tests.test_openapi import Checker, documented_responses


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    with stoppable_redis(tmp_path) as process:
        yield process


@pytest.fixture
def services(
    settings: Settings, redis_process: RedisProcess, live_clock: FixedClock, console: list[str]
) -> Services:
    # The production client (timeouts, bounded retries), not a test double.
    return build_services(
        settings, clock=live_clock, redis_client=connect(redis_process.url), announce=console.append
    )


@pytest.fixture
def app(settings: Settings, services: Services) -> Flask:
    return create_app(settings, services)


def assert_outage_page(answer: TestResponse) -> None:
    """The friendly 503: retry hint, the request id to quote, no internals."""
    body = answer.get_data(as_text=True)
    assert answer.status_code == 503
    assert answer.mimetype == "text/html"
    assert answer.headers["Retry-After"] == "5"
    assert answer.headers["Request-Id"] in body
    assert "briefly unavailable" in body
    assert "Traceback" not in body
    assert "redis" not in body.lower()


def assert_outage_json(answer: TestResponse) -> None:
    assert answer.status_code == 503
    assert answer.mimetype == "application/json"
    assert answer.headers["Retry-After"] == "5"
    assert answer.get_json()["error"] == "temporarily_unavailable"
    assert "redis" not in answer.get_data(as_text=True).lower()


def test_a_sign_in_page_answers_503_while_redis_is_down_and_works_again_after(
    browser: Browser, shop: RelyingParty, redis_process: RedisProcess
) -> None:
    url = shop.authorization_request().url
    page = browser.start(url)
    assert 'name="email"' in page.get_data(as_text=True)
    flow = browser.flow_path()

    redis_process.stop()
    reload = browser.get(url)

    assert_outage_page(reload)

    redis_process.start()
    again = browser.get(url)

    assert again.status_code == 200
    assert 'name="email"' in again.get_data(as_text=True)
    assert browser.flow_path() == flow  # the same step of the same flow, not a new flow
    assert browser.get(flow).status_code == 200  # and at its own address too


def test_submitting_the_email_answers_503_while_redis_is_down(
    browser: Browser, shop: RelyingParty, redis_process: RedisProcess
) -> None:
    browser.start(shop.authorization_request().url)

    redis_process.stop()

    assert_outage_page(browser.submit("/email", email="jenny@example.com"))


def test_authorize_answers_503_page_while_redis_is_down(
    browser: Browser, shop: RelyingParty, redis_process: RedisProcess
) -> None:
    request = shop.authorization_request()

    redis_process.stop()

    assert_outage_page(browser.get(request.url))


def test_logout_answers_503_page_while_redis_is_down(
    browser: Browser, shop: RelyingParty, console: list[str], redis_process: RedisProcess
) -> None:
    sign_in(browser, shop, console)

    redis_process.stop()

    assert_outage_page(browser.get(ISSUER + "/logout"))


def test_the_token_endpoint_answers_503_json_and_the_code_still_redeems_once_redis_is_back(
    browser: Browser, shop: RelyingParty, console: list[str], redis_process: RedisProcess
) -> None:
    request, callback = sign_in(browser, shop, console)
    code = dict(pair.split("=", 1) for pair in callback.split("?", 1)[1].split("&"))["code"]

    redis_process.stop()
    answer = browser.client.post(
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

    assert_outage_json(answer)

    # Redis kept the code (append-only persistence), and the failed attempt did not spend it.
    redis_process.start()
    token = shop.exchange(callback, request)

    assert shop.validate_id_token(token, request.nonce)["aud"] == "shop"


PUSHED_REQUEST = {
    "response_type": "code",
    "redirect_uri": SHOP_CALLBACK,
    "scope": "openid",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
}


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/revoke", {"token": "an-unknown-token"}),
        ("/introspect", {"token": "an-unknown-token"}),
        ("/par", PUSHED_REQUEST),
    ],
)
def test_client_endpoints_answer_503_json_while_redis_is_down(
    app: Flask, redis_process: RedisProcess, path: str, form: dict[str, str]
) -> None:
    redis_process.stop()

    answer = app.test_client().post(path, data=form, auth=("shop", SHOP_SECRET), base_url=ISSUER)

    assert_outage_json(answer)


def test_userinfo_answers_503_json_while_redis_is_down(
    app: Flask, redis_process: RedisProcess
) -> None:
    redis_process.stop()

    answer = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer an-access-token"}, base_url=ISSUER
    )

    assert_outage_json(answer)


def test_the_v1_api_answers_503_in_its_stripe_shaped_errors_while_redis_is_down(
    redis_process: RedisProcess, live_clock: FixedClock
) -> None:
    settings = api_settings()
    services = build_services(settings, clock=live_clock, redis_client=connect(redis_process.url))
    platform = Platform(create_app(settings, services), SHOP_KEY)

    redis_process.stop()
    answer = platform.get("/v1/accounts")

    assert answer.status_code == 503
    assert answer.mimetype == "application/json"
    assert answer.headers["Retry-After"] == "5"
    error = answer.get_json()["error"]
    assert error["type"] == "api_error"
    assert error["code"] == "service_unavailable"
    assert "redis" not in error["message"].lower()


def test_every_v1_operation_documents_the_503_it_answers_while_redis_is_down(
    redis_process: RedisProcess, live_clock: FixedClock
) -> None:
    settings = api_settings()
    services = build_services(settings, clock=live_clock, redis_client=connect(redis_process.url))
    platform = Platform(create_app(settings, services), SHOP_KEY)
    checker = Checker()

    redis_process.stop()
    account = "/v1/accounts/acct_x"
    checker.check("POST", "/v1/accounts", platform.post("/v1/accounts", {"type": "express"}))
    checker.check("GET", "/v1/accounts", platform.get("/v1/accounts"))
    checker.check("GET", account, platform.get(account))
    checker.check("POST", account, platform.post(account, {"metadata[a]": "b"}))
    checker.check("DELETE", account, platform.delete(account))
    checker.check("POST", "/v1/account_links", platform.post("/v1/account_links", {}))
    checker.check("POST", account + "/login_links", platform.post(account + "/login_links"))
    checker.check("GET", "/v1/events", platform.get("/v1/events"))
    checker.check("GET", "/v1/events/evt_x", platform.get("/v1/events/evt_x"))

    assert checker.covered == documented_responses("503")


def test_discovery_and_jwks_keep_serving_from_memory_while_redis_is_down(
    app: Flask,
    redis_process: RedisProcess,
    live_clock: FixedClock,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = app.test_client()
    discovery = client.get("/.well-known/openid-configuration", base_url=ISSUER).get_json()
    jwks = client.get("/jwks.json", base_url=ISSUER).get_json()

    redis_process.stop()
    # Past the keys' refresh interval: the due reload fails, the keys in memory still serve.
    live_clock.advance(settings.keys.refresh_interval + 1)
    with caplog.at_level(logging.WARNING, logger="oidc_link.keys"):
        for _ in range(3):
            answer = client.get("/jwks.json", base_url=ISSUER)
            assert answer.status_code == 200
            assert answer.get_json() == jwks
            answer = client.get("/.well-known/openid-configuration", base_url=ISSUER)
            assert answer.status_code == 200
            assert answer.get_json() == discovery
            live_clock.advance(OUTAGE_RETRY_INTERVAL)

    outage_warnings = [r for r in caplog.records if "Cannot refresh signing keys" in r.message]
    assert len(outage_warnings) == 1  # once per outage, not per request

    redis_process.start()
    live_clock.advance(OUTAGE_RETRY_INTERVAL)
    with caplog.at_level(logging.WARNING, logger="oidc_link.keys"):
        assert client.get("/jwks.json", base_url=ISSUER).get_json() == jwks

    assert any("refreshed from Redis again" in r.message for r in caplog.records)


def test_the_store_raises_store_unavailable_error_and_logs_the_outage_once(
    redis_process: RedisProcess, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(connect(redis_process.url), clock)
    assert store.server.ping() is True

    redis_process.stop()
    with caplog.at_level(logging.WARNING, logger="oidc_link.store"):
        with pytest.raises(StoreUnavailableError):
            store.flows.load("flow_x")
        with pytest.raises(StoreUnavailableError):
            store.limits.count("email", "jenny@example.com", 60)  # a pipeline
        with pytest.raises(StoreUnavailableError):
            store.tokens.load_access_token_and_family("a-token")  # a script
        with pytest.raises(StoreUnavailableError):
            store.server.ping()

        redis_process.start()
        assert store.server.ping() is True

    messages = [r.message for r in caplog.records]
    assert sum("Redis is unreachable" in m for m in messages) == 1
    assert sum("Redis is reachable again" in m for m in messages) == 1


def test_the_first_request_after_a_redis_restart_succeeds(
    redis_process: RedisProcess, clock: FixedClock
) -> None:
    store = Store(connect(redis_process.url), clock)
    assert store.server.ping() is True  # the pool now holds a connection

    redis_process.stop()
    redis_process.start()

    # The pooled connection died with the old server; no request pays for that.
    assert store.server.ping() is True
    assert store.flows.load("flow_x") is None


def test_the_production_client_has_timeouts_and_bounded_retries_on_connection_errors(
    redis_process: RedisProcess,
) -> None:
    client = connect(redis_process.url)
    connection = client.connection_pool.get_connection()
    try:
        assert connection.socket_timeout == REDIS_TIMEOUT
        assert connection.socket_connect_timeout == REDIS_TIMEOUT
        # Only on connection errors, not after a timeout: the command may have run, and
        # GETDEL or INCR must not run twice. Jittered backoff of 50 ms doubling to 500 ms.
        assert connection.retry == Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.5),
            REDIS_RETRIES,
            supported_errors=(redis.ConnectionError,),
        )
    finally:
        client.connection_pool.release(connection)
        client.close()


def test_an_outage_is_answered_quickly_when_redis_refuses_connections(
    redis_process: RedisProcess, clock: FixedClock
) -> None:
    store = Store(connect(redis_process.url), clock)
    redis_process.stop()

    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        store.server.ping()

    # REDIS_RETRIES retries with at most 0.5 s of backoff each, never the 1 s+ defaults.
    assert time.monotonic() - started < 0.5 * REDIS_RETRIES + 0.5
