"""The ``[outbox]`` table: its defaults (every instance delivers; Stripe's 3 days of retries)
and every problem named at load, as check-config shows them."""

from __future__ import annotations

from typing import Any

import pytest

from oidc_link.config import OutboxSettings, settings_from_mapping
from oidc_link.errors import ConfigError
from tests.conftest import SHOP_SECRET, provider_config


def load(outbox: dict[str, Any]) -> OutboxSettings:
    data = {**provider_config(), "outbox": outbox}
    return settings_from_mapping(data, {"SHOP_SECRET": SHOP_SECRET}, "test").outbox


def problems(outbox: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load(outbox)
    return {problem.field: problem.message for problem in caught.value.problems}


def test_by_default_every_instance_delivers_and_retries_for_three_days() -> None:
    settings = load({})
    assert settings == OutboxSettings()
    assert settings.deliver is True
    assert settings.max_age == 3 * 24 * 3600
    assert (settings.backoff_base, settings.backoff_cap) == (60, 3600)
    assert settings.claim_timeout == 60


def test_each_setting_is_read_from_the_table() -> None:
    table = {
        "deliver": False,
        "poll_interval": 0.5,
        "threads": 4,
        "batch": 20,
        "claim_timeout": 120,
        "max_age": 86400,
        "backoff_base": 30,
        "backoff_cap": 600,
        "lease": 10,
    }
    assert load(table) == OutboxSettings(**table)


def test_bad_values_are_each_named() -> None:
    assert problems(
        {
            "deliver": "yes",
            "poll_interval": 0,
            "threads": 0,
            "claim_timeout": -1,
            "max_age": 1.5,
            "colour": "blue",
        }
    ) == {
        "outbox.deliver": "must be true or false",
        "outbox.poll_interval": "must be a positive number of seconds",
        "outbox.threads": "must be a positive whole number",
        "outbox.claim_timeout": "must be a positive whole number",
        "outbox.max_age": "must be a positive whole number",
        "outbox.colour": "unknown setting",
    }


def test_a_cap_below_the_base_and_a_poll_past_redis_s_timeout_are_refused() -> None:
    assert problems({"backoff_base": 600, "backoff_cap": 60, "poll_interval": 2}) == {
        "outbox.backoff_cap": "must be at least outbox.backoff_base",
        "outbox.poll_interval": "must be at most 1.5 seconds",
    }
