"""GET /v1/events and GET /v1/events/{id} (issue 18 item 1): Stripe's event objects and list,
every filter, paging both ways, only the caller's owner's events, kept 30 days, and
Stripe-shaped errors for bad parameters. Events reach the list as the outbox hands them on
(``relay`` below does what the relay does with each: ``EventStore.save``)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.api_client import (
    ACME_APP_KEY,
    ACME_WEB_KEY,
    BLOG_KEY,
    SHOP_KEY,
    Platform,
    api_settings,
    error_of,
)
from tests.conftest import ON_REDIS_CLUSTER

pytestmark = ON_REDIS_CLUSTER

DAY = 86400


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def shop_api(app: Flask) -> Platform:
    return Platform(app, SHOP_KEY)


@pytest.fixture
def relay(redis_client: redis.Redis, live_clock: FixedClock) -> Any:
    """Hands every event in the outbox's announced streams to the events store, as the
    relay does (saving twice is harmless: the store is idempotent)."""
    store = Store(redis_client, live_clock)

    def hand_on() -> None:
        for stream in redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1):
            for _, fields in redis_client.xrange(stream):
                entry = OutboxEntry.from_fields(fields)
                if entry.kind == "event":
                    store.events.save(entry.body)

    return hand_on


def listed(platform: Platform, **query: str) -> dict[str, Any]:
    answer = platform.get("/v1/events", query)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def ids(page: dict[str, Any]) -> list[str]:
    return [event["id"] for event in page["data"]]


def test_an_api_change_s_event_is_listed_and_retrieved_in_stripe_s_shape(
    shop_api: Platform, relay: Any, live_clock: FixedClock
) -> None:
    created = shop_api.post("/v1/accounts", {"type": "custom"}, idempotency_key="make-1")
    relay()

    page = listed(shop_api)
    assert (page["object"], page["url"], page["has_more"]) == ("list", "/v1/events", False)
    [event] = page["data"]
    assert set(event) == {"id", "object", "type", "created", "account", "data", "request"}
    assert event["object"] == "event" and event["id"].startswith("evt_")
    assert event["type"] == "account.created"
    assert event["created"] == live_clock.now()
    assert event["data"] == {"object": created.get_json()}
    assert event["request"] == {
        "id": created.headers["Request-Id"],
        "idempotency_key": "make-1",
    }
    assert shop_api.get(f"/v1/events/{event['id']}").get_json() == event


def test_the_list_is_newest_first_and_pages_both_ways(
    shop_api: Platform, relay: Any, live_clock: FixedClock
) -> None:
    for _ in range(5):
        shop_api.create_account()
        live_clock.advance(1)
    relay()
    everything = ids(listed(shop_api))
    created = [event["created"] for event in listed(shop_api)["data"]]
    assert len(everything) == 5 and created == sorted(created, reverse=True)

    first = listed(shop_api, limit="2")
    assert ids(first) == everything[:2] and first["has_more"] is True
    second = listed(shop_api, limit="2", starting_after=everything[1])
    assert ids(second) == everything[2:4] and second["has_more"] is True
    last = listed(shop_api, limit="2", starting_after=everything[3])
    assert ids(last) == everything[4:] and last["has_more"] is False

    back = listed(shop_api, limit="2", ending_before=everything[4])
    assert ids(back) == everything[2:4] and back["has_more"] is True
    front = listed(shop_api, limit="2", ending_before=everything[2])
    assert ids(front) == everything[:2] and front["has_more"] is False
    assert listed(shop_api, ending_before=everything[0])["data"] == []


def test_the_type_and_created_filters_narrow_the_list(
    shop_api: Platform, relay: Any, live_clock: FixedClock
) -> None:
    start = live_clock.now()
    account = shop_api.create_account()
    live_clock.advance(10)
    shop_api.post(f"/v1/accounts/{account['id']}", {"metadata[plan]": "gold"})
    live_clock.advance(10)
    shop_api.delete(f"/v1/accounts/{account['id']}")
    relay()

    def types(**query: str) -> list[str]:
        return [event["type"] for event in listed(shop_api, **query)["data"]]

    assert types() == ["account.deleted", "account.updated", "account.created"]
    assert types(type="account.updated") == ["account.updated"]
    assert types(type="account.sessions.revoked") == []
    assert types(**{"created[gte]": str(start + 10)}) == ["account.deleted", "account.updated"]
    assert types(**{"created[gt]": str(start + 10)}) == ["account.deleted"]
    assert types(**{"created[lte]": str(start + 10)}) == ["account.updated", "account.created"]
    assert types(**{"created[lt]": str(start + 10)}) == ["account.created"]
    assert types(created=str(start + 20)) == ["account.deleted"]
    both = {"created[gte]": str(start + 1), "created[lt]": str(start + 20)}
    assert types(**both) == ["account.updated"]
    assert types(type="account.created", **{"created[gt]": str(start)}) == []
    updated = listed(shop_api, type="account.updated")["data"][0]
    assert updated["data"]["previous_attributes"] == {"metadata": {"plan": None}}
    deleted = listed(shop_api, type="account.deleted")["data"][0]
    assert deleted["data"]["object"] == updated["data"]["object"]  # the account as it was


def test_a_client_sees_only_its_owners_events_and_a_sector_shares_them(
    app: Flask, shop_api: Platform, relay: Any
) -> None:
    shop_api.create_account()
    acme_web, acme_app, blog = (
        Platform(app, key) for key in (ACME_WEB_KEY, ACME_APP_KEY, BLOG_KEY)
    )
    acme_web.create_account()
    relay()
    [shops] = listed(shop_api)["data"]
    [acmes] = listed(acme_web)["data"]

    assert listed(blog)["data"] == []
    assert ids(listed(acme_app)) == [acmes["id"]]
    missing = error_of(blog.get(f"/v1/events/{shops['id']}"), 404)
    assert (missing["code"], missing["param"]) == ("resource_missing", "id")
    error_of(acme_app.get(f"/v1/events/{shops['id']}"), 404)
    assert error_of(blog.get("/v1/events", {"starting_after": shops["id"]}), 400)["code"] == (
        "resource_missing"
    )


def test_events_are_kept_30_days(
    shop_api: Platform, relay: Any, live_clock: FixedClock, redis_client: redis.Redis
) -> None:
    shop_api.create_account()
    relay()
    [event] = listed(shop_api)["data"]
    assert 0 < redis_client.ttl(keyspace.event(event["id"])) <= 30 * DAY

    live_clock.advance(30 * DAY - 1)
    assert ids(listed(shop_api)) == [event["id"]]
    live_clock.advance(1)
    shop_api.create_account()  # a later save trims the index of what aged out
    relay()

    assert event["id"] not in ids(listed(shop_api))
    assert len(listed(shop_api)["data"]) == 1
    error_of(shop_api.get(f"/v1/events/{event['id']}"), 404)
    assert redis_client.zscore(keyspace.events_of("shop"), event["id"]) is None


def test_saving_an_event_twice_keeps_it_once(
    shop_api: Platform, relay: Any, redis_client: redis.Redis
) -> None:
    shop_api.create_account()
    relay()
    relay()

    assert len(listed(shop_api)["data"]) == 1
    assert redis_client.zcard(keyspace.events_of("shop")) == 1


@pytest.mark.parametrize(
    ("query", "param", "code"),
    [
        ({"limit": "0"}, "limit", "parameter_invalid_integer"),
        ({"limit": "101"}, "limit", "parameter_invalid_integer"),
        ({"type": "account.exploded"}, "type", "parameter_invalid_string"),
        ({"created[gte]": "yesterday"}, "created[gte]", "parameter_invalid_integer"),
        ({"created[after]": "1"}, "created[after]", "parameter_unknown"),
        ({"created": "-5"}, "created", "parameter_invalid_integer"),
        ({"starting_after": "evt_nope"}, "starting_after", "resource_missing"),
        ({"ending_before": "evt_nope"}, "ending_before", "resource_missing"),
        ({"starting_after": "evt_a", "ending_before": "evt_b"}, "ending_before", None),
        ({"colour": "blue"}, "colour", "parameter_unknown"),
    ],
)
def test_bad_list_parameters_get_a_stripe_error(
    shop_api: Platform, query: dict[str, str], param: str, code: str | None
) -> None:
    error = error_of(shop_api.get("/v1/events", query), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_events_need_an_api_key_and_take_no_post(app: Flask, shop_api: Platform) -> None:
    assert error_of(app.test_client().get("/v1/events"), 401)["type"] == "authentication_error"
    assert error_of(shop_api.post("/v1/events", {}), 405)["code"] == "method_not_allowed"
    error_of(shop_api.get("/v1/events/evt_missing"), 404)


def test_an_idempotent_replay_and_a_refused_request_write_no_event(
    shop_api: Platform, relay: Any
) -> None:
    first = shop_api.post("/v1/accounts", {"type": "custom"}, idempotency_key="once")
    replay = shop_api.post("/v1/accounts", {"type": "custom"}, idempotency_key="once")
    error_of(shop_api.post("/v1/accounts", {"type": "standard"}), 400)
    error_of(shop_api.post(f"/v1/accounts/{first.get_json()['id']}", {"email": "nope"}), 400)
    relay()

    assert replay.headers["Idempotent-Replayed"] == "true"
    [event] = listed(shop_api)["data"]
    assert event["data"]["object"] == first.get_json()
    assert event["request"]["id"] == first.headers["Request-Id"]
