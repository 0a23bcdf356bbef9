"""``[redis] key_layout``: "compatible" writes tokens, codes and sign-ins as 1fcd0cc did, so
that its instances find them during a rolling upgrade; "tagged" (the default) writes the
hash-tagged forms. Instances of either layout on one Redis use what the other wrote.

Two apps of one configuration but the layout share one Redis here (fakeredis and a real
redis-server); tests/test_rolling_upgrade.py runs 1fcd0cc itself beside today's app.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.ids import digest
from oidc_link.services import build_services
from oidc_link.store import keyspace
from tests.conftest import ISSUER, JENNY, SHOP_CALLBACK, SHOP_SECRET, provider_config
from tests.relying_party import AuthorizationRequest, Browser, query_of
from tests.sandbox_console import announced_code
from tests.test_refresh_tokens import OFFLINE, refresh, shop_rp, userinfo_status


def settings_with(redis_table: dict[str, Any] | None, redis_url: str | None = None) -> Settings:
    config = provider_config()
    if redis_table is not None:
        config["redis"] = redis_table
    if redis_url is not None:
        config["redis_url"] = redis_url
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "key layout test")


def problems_of(redis_table: dict[str, Any], redis_url: str | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        settings_with(redis_table, redis_url)
    return {problem.field: problem.message for problem in caught.value.problems}


def test_the_default_key_layout_is_tagged_and_compatible_is_accepted_on_one_redis() -> None:
    assert settings_with(None).redis.key_layout == "tagged"
    assert not settings_with(None).redis.compatible_layout
    compatible = settings_with({"key_layout": "compatible"}, "redis://cache.internal:6379/0")
    assert compatible.redis.compatible_layout
    sentinel = settings_with(
        {"key_layout": "compatible"}, "redis+sentinel://s1.internal,s2.internal/main"
    )
    assert sentinel.redis.compatible_layout


def test_the_compatible_layout_is_refused_on_a_redis_cluster_url() -> None:
    problems = problems_of({"key_layout": "compatible"}, "redis+cluster://n1.internal:7000")
    assert "cannot run on Redis Cluster" in problems["redis.key_layout"]
    assert "n1.internal" not in problems["redis.key_layout"]
    tagged = settings_with({"key_layout": "tagged"}, "redis+cluster://n1.internal:7000")
    assert tagged.redis.key_layout == "tagged"


def test_an_unknown_key_layout_is_refused_with_the_choices() -> None:
    problems = problems_of({"key_layout": "old"})
    assert problems["redis.key_layout"] == "must be one of tagged, compatible"


def instance(
    redis_client: redis.Redis, clock: FixedClock, console: list[str], layout: str
) -> Flask:
    settings = settings_with({"key_layout": layout})
    services = build_services(
        settings, clock=clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


@pytest.fixture
def compatible(redis_client: redis.Redis, live_clock: FixedClock, console: list[str]) -> Flask:
    return instance(redis_client, live_clock, console, "compatible")


@pytest.fixture
def tagged(redis_client: redis.Redis, live_clock: FixedClock, console: list[str]) -> Flask:
    return instance(redis_client, live_clock, console, "tagged")


def test_an_instance_on_the_compatible_layout_says_at_start_that_it_is_for_one_rollout(
    redis_client: redis.Redis,
    live_clock: FixedClock,
    console: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="oidc_link.services"):
        instance(redis_client, live_clock, console, "tagged")
    assert not [r for r in caplog.records if r.name == "oidc_link.services"]
    with caplog.at_level(logging.WARNING, logger="oidc_link.services"):
        instance(redis_client, live_clock, console, "compatible")
    (said,) = [r.getMessage() for r in caplog.records if r.name == "oidc_link.services"]
    assert "remove [redis] key_layout" in said


def code_at(app: Flask, console: list[str]) -> tuple[AuthorizationRequest, str]:
    """Jenny signs in at ``app`` for the shop (offline_access): the request and its code."""
    rp = shop_rp(app, OFFLINE)
    request = rp.authorization_request()
    browser = Browser(app, ISSUER)
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    assert answer.status_code == 302
    return request, query_of(answer.headers["Location"])["code"]


def redeem_at(app: Flask, request: AuthorizationRequest, code: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SHOP_CALLBACK,
        "code_verifier": request.code_verifier,
    }
    return app.test_client().post("/token", data=form, auth=("shop", SHOP_SECRET), base_url=ISSUER)


def untagged(kind: str, secret: str) -> str:
    """The key 1fcd0cc gave a code or token (its digest, no hash tag)."""
    return keyspace.PREFIX + kind + ":" + digest(secret)


def test_the_compatible_layout_writes_codes_and_tokens_as_1fcd0cc_did(
    compatible: Flask, redis_client: redis.Redis, console: list[str]
) -> None:
    request, code = code_at(compatible, console)
    assert redis_client.exists(untagged("code", code))
    assert not redis_client.exists(keyspace.code(code))

    issued = redeem_at(compatible, request, code).get_json()
    assert redis_client.exists(untagged("code_spent", code))
    for kind in ("access_token", "refresh_token"):
        assert keyspace.token_family(issued[kind]) is None
        assert redis_client.exists(untagged(kind, issued[kind]))
    # Only rate counters are tagged (each layout counts its own windows), and the outbox
    # stream of the account's account.created (issue 18: a kind 1fcd0cc never reads).
    tagged_keys = [key for key in redis_client.keys(keyspace.pattern()) if "{" in key]
    assert {keyspace.kind_of(key) for key in tagged_keys} == {"rate", "outbox"}

    rotated = refresh(compatible, issued["refresh_token"]).get_json()
    assert keyspace.token_family(rotated["refresh_token"]) is None
    assert redis_client.exists(untagged("refresh_token", rotated["refresh_token"]))
    assert redis_client.exists(untagged("refresh_used", issued["refresh_token"]))
    assert userinfo_status(compatible, rotated["access_token"]) == 200


def test_tokens_of_either_layout_refresh_and_answer_userinfo_on_the_other(
    compatible: Flask, tagged: Flask, console: list[str]
) -> None:
    request, code = code_at(compatible, console)
    issued = redeem_at(compatible, request, code).get_json()
    assert userinfo_status(tagged, issued["access_token"]) == 200

    on_tagged = refresh(tagged, issued["refresh_token"])
    assert on_tagged.status_code == 200, on_tagged.get_json()
    family = keyspace.token_family(on_tagged.get_json()["refresh_token"])
    assert family is not None
    assert userinfo_status(compatible, on_tagged.get_json()["access_token"]) == 200

    back = refresh(compatible, on_tagged.get_json()["refresh_token"])
    assert back.status_code == 200, back.get_json()
    assert keyspace.token_family(back.get_json()["refresh_token"]) is None
    again = refresh(tagged, back.get_json()["refresh_token"])
    assert again.status_code == 200, again.get_json()
    assert keyspace.token_family(again.get_json()["refresh_token"]) == family


@pytest.mark.parametrize("issuer_layout", ["compatible", "tagged"])
def test_a_code_issued_by_either_layout_is_redeemed_once_by_the_other(
    compatible: Flask, tagged: Flask, console: list[str], issuer_layout: str
) -> None:
    issuing, redeeming = (
        (compatible, tagged) if issuer_layout == "compatible" else (tagged, compatible)
    )
    request, code = code_at(issuing, console)

    issued = redeem_at(redeeming, request, code)
    assert issued.status_code == 200, issued.get_json()
    tokens = issued.get_json()
    assert userinfo_status(issuing, tokens["access_token"]) == 200

    # Presented again, at either instance: refused, and what it issued is revoked.
    replayed = redeem_at(issuing, request, code)
    assert replayed.status_code == 400
    assert replayed.get_json()["error"] == "invalid_grant"
    assert userinfo_status(redeeming, tokens["access_token"]) == 401
    assert refresh(redeeming, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_pending_sign_in_on_the_compatible_layout_keeps_1fcd0cc_key_names(
    compatible: Flask, redis_client: redis.Redis, console: list[str]
) -> None:
    rp = shop_rp(compatible, OFFLINE)
    request = rp.authorization_request()
    browser = Browser(compatible, ISSUER)
    browser.start(request.url)
    flow_id = browser.flow_path().rsplit("/", 1)[1]
    assert redis_client.exists(keyspace.PREFIX + "flow:" + flow_id)
    assert not redis_client.exists(keyspace.flow(flow_id))

    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    assert answer.status_code == 302
    assert redis_client.exists(keyspace.PREFIX + "flow_done:" + flow_id)
    assert not redis_client.exists(keyspace.PREFIX + "flow:" + flow_id)
    callback = answer.headers["Location"]
    assert query_of(callback)["state"] == request.state
