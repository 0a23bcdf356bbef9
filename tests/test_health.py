"""/healthz and /readyz against a redis-server of the test's own, stopped and started."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.keys import SigningKeys
from oidc_link.logs import configure_logging
from oidc_link.services import Services, build_services
from oidc_link.store import Store, connect
from tests.conftest import ISSUER
from tests.redis_process import RedisProcess, stoppable_redis


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    with stoppable_redis(tmp_path) as process:
        yield process


@pytest.fixture
def services(settings: Settings, redis_process: RedisProcess, live_clock: FixedClock) -> Services:
    # The production client (timeouts, bounded retries), not a test double; a clock that
    # agrees with Redis's (readiness compares them).
    return build_services(settings, clock=live_clock, redis_client=connect(redis_process.url))


@pytest.fixture
def app(settings: Settings, services: Services) -> Flask:
    return create_app(settings, services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def probe(client: FlaskClient, path: str) -> tuple[int, dict[str, object], str]:
    answer = client.get(path, base_url=ISSUER)
    assert answer.mimetype == "application/json"
    return answer.status_code, answer.get_json(), answer.headers["Cache-Control"]


@pytest.fixture
def admin(redis_process: RedisProcess) -> Iterator[redis.Redis]:
    """A connection of the test's own to read the server's statistics (opened once, so
    that its own handshake is not counted between two readings)."""
    with redis.Redis.from_url(redis_process.url) as connection:
        connection.ping()
        yield connection


def commands_served(admin: redis.Redis) -> dict[str, int]:
    """Calls per command the server has answered, leaving out the INFO that asks."""
    stats = admin.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stat["calls"])
        for name, stat in stats.items()
        if name != "cmdstat_info"
    }


def test_healthz_answers_ok_and_is_never_cached(client: FlaskClient) -> None:
    assert probe(client, "/healthz") == (200, {"status": "ok"}, "no-store")


def test_healthz_answers_ok_while_redis_is_down(
    client: FlaskClient, redis_process: RedisProcess
) -> None:
    redis_process.stop()

    assert probe(client, "/healthz") == (200, {"status": "ok"}, "no-store")


def test_readyz_is_ready_when_redis_answers_and_the_signing_keys_are_loaded(
    client: FlaskClient, live_clock: FixedClock
) -> None:
    status, body, cache = probe(client, "/readyz")
    # The fixed clock has stood still since it read the time, Redis's has gone on: behind by
    # up to that long (seconds on a loaded machine, building the app), never ahead.
    behind = time.time() - live_clock.now()

    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"] == {"redis": "ok", "signing_keys": "ok", "clock": "ok"}
    # Whole seconds on both sides: a reading may straddle a second's turn.
    assert -behind - 1 <= body["clock_skew_seconds"] <= 1
    assert cache == "no-store"


def test_readyz_turns_unready_while_redis_is_down_and_ready_again_when_it_is_back(
    client: FlaskClient, redis_process: RedisProcess
) -> None:
    assert probe(client, "/readyz")[0] == 200

    redis_process.stop()
    status, body, cache = probe(client, "/readyz")

    assert status == 503
    assert body == {
        "status": "unavailable",
        "checks": {"redis": "unreachable", "signing_keys": "ok", "clock": "unknown"},
    }
    assert cache == "no-store"

    redis_process.start()

    assert probe(client, "/readyz")[0] == 200


def test_readyz_costs_one_time_command_and_no_key_reload_even_when_a_refresh_is_due(
    settings: Settings, redis_process: RedisProcess, admin: redis.Redis, live_clock: FixedClock
) -> None:
    # The clock moves past the keys' refresh interval; the allowed skew covers that move.
    due = settings.keys.refresh_interval + 1
    tolerant = replace(settings, max_clock_skew=due + 5)
    services = build_services(tolerant, clock=live_clock, redis_client=connect(redis_process.url))
    client = create_app(tolerant, services).test_client()
    live_clock.advance(due)
    before = commands_served(admin)

    for _ in range(3):
        assert probe(client, "/readyz")[0] == 200

    after = commands_served(admin)
    spent = {name: after[name] - before.get(name, 0) for name in after}
    # TIME tells both that Redis answers and what its clock says.
    assert {name: calls for name, calls in spent.items() if calls} == {"time": 3}


def test_healthz_makes_no_redis_call(client: FlaskClient, admin: redis.Redis) -> None:
    before = commands_served(admin)

    assert probe(client, "/healthz")[0] == 200

    assert commands_served(admin) == before


def test_signing_keys_are_ready_only_once_loaded(settings: Settings, clock: FixedClock) -> None:
    store = Store(fakeredis.FakeRedis(decode_responses=True), clock)
    keys = SigningKeys(store, clock, settings.keys, settings.lifetimes.id_token)

    assert keys.ready() is False

    keys.load()

    assert keys.ready() is True


def request_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line.get("event") == "http.request"]


def counted(services: Services, endpoint: str, method: str, status: int) -> float:
    labels = {"endpoint": endpoint, "method": method, "status": str(status)}
    count = services.metrics.registry.get_sample_value(
        "oidc_link_http_request_duration_seconds_count", labels
    )
    return count or 0.0


def test_by_default_a_successful_probe_is_counted_but_writes_no_request_line(
    client: FlaskClient, services: Services
) -> None:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)

    assert probe(client, "/healthz")[0] == 200
    assert probe(client, "/readyz")[0] == 200
    assert client.head("/readyz", base_url=ISSUER).status_code == 200

    assert request_lines(stream) == []
    assert counted(services, "health.liveness", "GET", 200) == 1
    assert counted(services, "health.readiness", "GET", 200) == 1
    assert counted(services, "health.readiness", "HEAD", 200) == 1


@pytest.mark.parametrize("probe_requests", ["counter", "line"])
def test_an_unready_or_refused_probe_is_logged_whatever_the_setting(
    probe_requests: str, settings: Settings, redis_process: RedisProcess, live_clock: FixedClock
) -> None:
    chosen = replace(settings, logs=replace(settings.logs, probe_requests=probe_requests))
    services = build_services(chosen, clock=live_clock, redis_client=connect(redis_process.url))
    client = create_app(chosen, services).test_client()
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)

    redis_process.stop()
    unready = client.get("/readyz", base_url=ISSUER)
    refused = client.post("/healthz", base_url=ISSUER)
    redis_process.start()
    ready = client.get("/readyz", base_url=ISSUER)

    assert (unready.status_code, refused.status_code, ready.status_code) == (503, 405, 200)
    logged = [(line["route"], line["status"], line["level"]) for line in request_lines(stream)]
    expected = [("/readyz", 503, "error"), (None, 405, "info")]
    if probe_requests == "line":
        expected.append(("/readyz", 200, "info"))
    assert logged == expected
    assert counted(services, "health.readiness", "GET", 503) == 1
    assert counted(services, "unmatched", "POST", 405) == 1
    assert counted(services, "health.readiness", "GET", 200) == 1
