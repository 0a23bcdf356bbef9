"""An instance whose clock is far from Redis's TIME says so: an ERROR at start and when it
drifts beyond ``max_clock_skew``, a gauge, and /readyz unready. The instance's clock is a
FixedClock set away from real time; Redis's is the real one (fakeredis and redis-server)."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import ConfigError, Settings, settings_from_mapping
from oidc_link.services import Services, build_services
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, SHOP_SECRET, provider_config

# On a real Redis Cluster too (issue 17 item 3): readiness reads the time of Redis there too.
pytestmark = ON_REDIS_CLUSTER

FAST = 180  # three minutes fast: ID tokens 180 s in the future


def instance(settings: Settings, redis_client: redis.Redis, off_by: int) -> Services:
    """One instance's services, its clock ``off_by`` seconds from real time."""
    clock = FixedClock(int(time.time()) + off_by)
    return build_services(settings, clock=clock, redis_client=redis_client)


def gauge(services: Services) -> float | None:
    return services.metrics.registry.get_sample_value("oidc_link_clock_skew_seconds")


def skew_lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", "") == event]


def readiness(app: Flask) -> tuple[int, dict[str, object]]:
    answer = app.test_client().get("/readyz", base_url=ISSUER)
    return answer.status_code, answer.get_json()


def near(value: object, expected: int, since: float) -> bool:
    """Whole seconds on both clocks: a reading may straddle a second's turn. And the fixed
    clock has stood still since ``since`` (when the instance read the time) while Redis's
    went on: behind by up to that long (seconds on a loaded machine, building the app)."""
    behind = time.time() - since
    return isinstance(value, (int, float)) and expected - behind - 1 <= value <= expected + 1


@pytest.mark.parametrize("off_by", [FAST, -FAST], ids=["fast", "slow"])
def test_an_instance_that_starts_with_its_clock_off_logs_an_error_and_sets_the_gauge(
    settings: Settings,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    off_by: int,
) -> None:
    since = time.time()
    services = instance(settings, redis_client, off_by)

    with caplog.at_level(logging.INFO, logger="oidc_link.clock_skew"):
        create_app(settings, services)

    [line] = skew_lines(caplog, "clock.skewed")
    assert line.levelno == logging.ERROR
    assert near(line.skew_seconds, off_by, since)
    assert "max_clock_skew (5 s)" in line.getMessage()
    assert "NTP" in line.getMessage()
    assert near(gauge(services), off_by, since)


def test_an_instance_on_time_logs_nothing_and_its_gauge_reads_about_zero(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    since = time.time()
    services = instance(settings, redis_client, 0)

    with caplog.at_level(logging.INFO, logger="oidc_link.clock_skew"):
        app = create_app(settings, services)

    assert skew_lines(caplog, "clock.skewed") == []
    assert near(gauge(services), 0, since)
    status, body = readiness(app)
    assert status == 200
    assert body["checks"] == {"redis": "ok", "signing_keys": "ok", "clock": "ok"}


def test_readyz_is_unready_while_the_clock_is_beyond_the_skew_and_ready_once_it_is_back(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    since = time.time()
    services = instance(settings, redis_client, 0)
    app = create_app(settings, services)
    clock = services.clock
    assert isinstance(clock, FixedClock)

    clock.advance(FAST)  # the instance's clock jumps (a VM resumed, NTP stopped)
    with caplog.at_level(logging.INFO, logger="oidc_link.clock_skew"):
        first = readiness(app)
        second = readiness(app)
        clock.advance(-FAST)  # NTP brings it back
        third = readiness(app)

    for status, body in (first, second):
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["checks"] == {"redis": "ok", "signing_keys": "ok", "clock": "skewed"}
        assert near(body["clock_skew_seconds"], FAST, since)
    assert third[0] == 200
    assert third[1]["checks"]["clock"] == "ok"
    # Probes come every few seconds: one ERROR when it went beyond, one line when back.
    assert len(skew_lines(caplog, "clock.skewed")) == 1
    assert len(skew_lines(caplog, "clock.agrees")) == 1
    assert near(gauge(services), 0, since)


def test_the_allowed_skew_is_configurable(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    config = provider_config() | {"max_clock_skew": 300}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET})
    since = time.time()
    services = instance(settings, redis_client, FAST)

    with caplog.at_level(logging.INFO, logger="oidc_link.clock_skew"):
        app = create_app(settings, services)

    assert settings.max_clock_skew == 300
    assert skew_lines(caplog, "clock.skewed") == []
    assert readiness(app)[0] == 200
    assert near(gauge(services), FAST, since)  # still measured and exposed


def test_the_allowed_skew_defaults_to_5_seconds_and_must_be_a_positive_whole_number() -> None:
    settings = settings_from_mapping(provider_config(), {"SHOP_SECRET": SHOP_SECRET})
    assert settings.max_clock_skew == 5

    for wrong in (0, -1, "five", 2.5):
        with pytest.raises(ConfigError, match="max_clock_skew"):
            settings_from_mapping(
                provider_config() | {"max_clock_skew": wrong}, {"SHOP_SECRET": SHOP_SECRET}
            )
