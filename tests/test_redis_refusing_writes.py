"""What users and relying parties meet while Redis answers but refuses writes: full under
``noeviction``, a read-only replica (as after a failover, until the client follows), or
MISCONF when it cannot persist. They get the 503s of an unreachable Redis, the log and a
metric name the cause, and what was pending still works once Redis takes writes again.
A real redis-server of each test's own, turned into each state with CONFIG SET."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.errors import StoreUnavailableError
from oidc_link.models import FinishedFlow
from oidc_link.services import Services, build_services
from oidc_link.store import connect, keyspace
from oidc_link.store.base import FINISH_FLOW, RELEASE_LOCK
from tests.conftest import ISSUER, JENNY, SHOP_CALLBACK, SHOP_SECRET
from tests.redis_process import RedisProcess, stoppable_redis
from tests.relying_party import AuthorizationRequest, Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code
from tests.test_oidc_flow import sign_in
from tests.test_redis_outage import assert_outage_json, assert_outage_page
from tests.test_store import make_flow


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    with stoppable_redis(tmp_path) as process:
        yield process


@pytest.fixture
def admin(redis_process: RedisProcess) -> Iterator[redis.Redis]:
    """The operator's connection: CONFIG SET, REPLICAOF, BGSAVE."""
    with redis.Redis.from_url(redis_process.url, decode_responses=True) as connection:
        yield connection


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


def redeem(browser: Browser, request: AuthorizationRequest, callback: str) -> TestResponse:
    """The relying party's token request for the code in ``callback``, as it is answered."""
    return browser.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": query_of(callback)["code"],
            "redirect_uri": SHOP_CALLBACK,
            "code_verifier": request.code_verifier,
        },
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )


def refused(services: Services, cause: str) -> float:
    """503 answers counted for ``cause``."""
    value = services.metrics.registry.get_sample_value(
        "oidc_link_store_unavailable_total", {"cause": cause}
    )
    return value or 0.0


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "") == "redis.refusing_writes"]


def fill_up(admin: redis.Redis) -> None:
    """Fill Redis to its maxmemory under noeviction, as a busy site would, and keep it there.

    A refused command frees its own buffers, which can let the next small write in; the
    limit then goes below what is stored, so that every write is refused for the test.
    """
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + 256 * 1024)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for number in range(100_000):
            admin.set(f"filler:{number}", "x" * 1024)
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) // 2)


def test_a_full_redis_answers_503_names_the_cause_and_pending_sign_ins_finish_after(
    app: Flask,
    services: Services,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    admin: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Pending when Redis fills up: a code the relying party has yet to redeem, and another
    # person's sign-in waiting for the SMS code.
    request, callback = sign_in(browser, shop, console)
    waiting = Browser(app, ISSUER)
    waiting_request = shop.authorization_request()
    waiting.start(waiting_request.url)
    waiting.submit("/email", email=JENNY)
    sms_code = announced_code(console)

    fill_up(admin)
    with caplog.at_level(logging.INFO):
        assert_outage_page(Browser(app, ISSUER).get(shop.authorization_request().url))
        assert_outage_json(redeem(browser, request, callback))
        assert_outage_json(redeem(browser, request, callback))

    assert refused(services, "out_of_memory") == 3
    [line] = refusal_lines(caplog)  # once for the run of refusals, not once per request
    assert line.levelno == logging.ERROR
    assert line.cause == "out_of_memory"
    assert "out of memory" in line.getMessage()
    answered = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Answered")]
    assert answered and all("Redis out of memory" in message for message in answered)

    admin.config_set("maxmemory", 0)  # the operator adds memory

    # The refused exchanges did not spend the code, and the waiting sign-in goes on.
    assert shop.validate_id_token(shop.exchange(callback, request), request.nonce)["aud"] == "shop"
    finished = waiting.submit("/code", code=sms_code)
    assert finished.status_code == 302
    later = shop.exchange(finished.headers["Location"], waiting_request)
    assert shop.validate_id_token(later, waiting_request.nonce)["email"] == JENNY


def test_a_signed_in_browser_meets_a_full_redis_with_503_and_its_session_answers_after(
    app: Flask,
    services: Services,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    admin: redis.Redis,
) -> None:
    sign_in(browser, shop, console)

    fill_up(admin)
    # The session can be read but not renewed, so no code is issued: the outage page.
    assert_outage_page(browser.get(shop.authorization_request().url))
    assert_outage_page(browser.get(shop.authorization_request(prompt="login").url))
    assert refused(services, "out_of_memory") == 2

    admin.config_set("maxmemory", 0)
    request = shop.authorization_request()
    answer = browser.get(request.url)
    assert answer.status_code == 302
    token = shop.exchange(answer.headers["Location"], request)
    assert shop.validate_id_token(token, request.nonce)["email"] == JENNY
    assert len(console) == 1  # no second SMS


def test_an_instance_starting_while_redis_is_full_serves_with_the_stored_keys(
    app: Flask,
    settings: Settings,
    redis_process: RedisProcess,
    admin: redis.Redis,
    live_clock: FixedClock,
) -> None:
    jwks = app.test_client().get("/jwks.json", base_url=ISSUER).get_json()

    fill_up(admin)
    # A restart (a deploy, a crash) during the incident: it only needs to read the keys.
    restarted = build_services(settings, clock=live_clock, redis_client=connect(redis_process.url))
    second = create_app(settings, restarted)

    assert second.test_client().get("/jwks.json", base_url=ISSUER).get_json() == jwks


def test_a_redis_turned_into_a_read_only_replica_answers_503_and_serves_again_as_master(
    app: Flask,
    services: Services,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    admin: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request, callback = sign_in(browser, shop, console)

    # What the old master becomes after a failover, until the client follows the new one:
    # a replica, read-only by default, here of a master that does not answer.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        admin.replicaof("127.0.0.1", unused.getsockname()[1])
    try:
        with caplog.at_level(logging.ERROR, logger="oidc_link.store"):
            assert_outage_page(Browser(app, ISSUER).get(shop.authorization_request().url))
            assert_outage_json(redeem(browser, request, callback))
    finally:
        admin.replicaof("NO", "ONE")

    assert refused(services, "read_only") == 2
    [line] = refusal_lines(caplog)
    assert line.cause == "read_only"
    assert "read-only replica" in line.getMessage()
    assert shop.validate_id_token(shop.exchange(callback, request), request.nonce)["aud"] == "shop"


def test_a_redis_that_cannot_persist_answers_503_and_serves_again_once_it_can(
    app: Flask,
    services: Services,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    admin: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request, callback = sign_in(browser, shop, console)

    # Snapshots on, stop-writes-on-bgsave-error (the default), and a snapshot that fails:
    # a directory stands where its file goes, so the finished file cannot be moved there
    # (whoever runs the test). Redis then refuses writes with MISCONF.
    in_the_way = Path(admin.config_get("dir")["dir"]) / admin.config_get("dbfilename")["dbfilename"]
    (in_the_way / "occupied").mkdir(parents=True)
    admin.config_set("save", "3600 1")
    admin.config_set("stop-writes-on-bgsave-error", "yes")
    try:
        admin.bgsave()
        wait_for_snapshot(admin, "err")
        with caplog.at_level(logging.ERROR, logger="oidc_link.store"):
            assert_outage_page(Browser(app, ISSUER).get(shop.authorization_request().url))
            assert_outage_json(redeem(browser, request, callback))
    finally:
        (in_the_way / "occupied").rmdir()
        in_the_way.rmdir()
        admin.bgsave()
        wait_for_snapshot(admin, "ok")
        admin.config_set("save", "")

    assert refused(services, "misconf") == 2
    [line] = refusal_lines(caplog)
    assert line.cause == "misconf"
    assert "cannot persist" in line.getMessage()
    assert shop.validate_id_token(shop.exchange(callback, request), request.nonce)["aud"] == "shop"


def wait_for_snapshot(admin: redis.Redis, status: str) -> None:
    """Until the last BGSAVE has ended with ``status`` (``ok`` or ``err``)."""
    deadline = time.monotonic() + 20
    while True:
        persistence = admin.info("persistence")
        done = not persistence["rdb_bgsave_in_progress"]
        if done and persistence["rdb_last_bgsave_status"] == status:
            return
        assert time.monotonic() < deadline, persistence
        time.sleep(0.05)


def test_a_sign_in_ending_while_redis_is_full_keeps_its_flow_and_releases_its_lock(
    services: Services, admin: redis.Redis, live_clock: FixedClock
) -> None:
    # The step's writes are a plain pipeline (its keys are on several cluster slots): the
    # flow's end is one script, so a refused SET of how it finished does not let the DEL
    # of the flow through; the person retries once Redis has memory again.
    flows = services.store.flows
    flow = make_flow(live_clock)
    flows.add(flow)
    token = flows.lock(flow.id, 30)
    assert token is not None
    finished = FinishedFlow(
        client_id="shop",
        redirect_uri=SHOP_CALLBACK,
        sealed_redirect=None,
        redirect_valid_until=live_clock.now() + 10,
    )
    for script in (FINISH_FLOW, RELEASE_LOCK):
        admin.script_load(script)  # known before Redis fills up, as on a running site
    fill_up(admin)

    with pytest.raises(StoreUnavailableError):
        flows.release(flow.id, token, finished=finished, batch=services.store.writes())

    assert flows.load(flow.id) == flow
    assert flows.load_finished(flow.id) is None
    assert admin.exists(keyspace.flow_lock(flow.id)) == 0
