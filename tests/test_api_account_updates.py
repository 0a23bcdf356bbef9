"""The /v1 habits Stripe users expect (issue 18 item 4): updating an account's email and
metadata, HTTP Basic with the key as user name, Stripe-shaped 405s, and ``ending_before``."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.platform.accounts import Accounts, Binding
from oidc_link.platform.events import Events
from oidc_link.store import Store, keyspace
from tests.api_client import (
    ACME_APP_KEY,
    ACME_WEB_KEY,
    BLOG_KEY,
    SHOP_KEY,
    Platform,
    api_settings,
    error_of,
)
from tests.conftest import JENNY, ON_REDIS_CLUSTER
from tests.relying_party import Browser
from tests.test_account_links import onboard, onboarding_url

# On a real Redis Cluster too.
pytestmark = ON_REDIS_CLUSTER

SALT = "update-tests-salt"


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
def shop_api(app: Flask) -> Platform:
    return Platform(app, SHOP_KEY)


def updated(platform: Platform, account_id: str, params: dict[str, str]) -> dict[str, Any]:
    response = platform.post(f"/v1/accounts/{account_id}", params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- POST /v1/accounts/{id}: metadata ---


def test_metadata_keys_merge_into_the_existing_metadata(shop_api: Platform) -> None:
    account = shop_api.create_account(**{"metadata[plan]": "gold", "metadata[team]": "red"})

    answer = updated(shop_api, account["id"], {"metadata[team]": "blue", "metadata[seat]": "4"})

    assert answer["metadata"] == {"plan": "gold", "team": "blue", "seat": "4"}
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json() == answer


def test_an_empty_metadata_value_unsets_that_key_only(shop_api: Platform) -> None:
    account = shop_api.create_account(**{"metadata[plan]": "gold", "metadata[team]": "red"})

    answer = updated(shop_api, account["id"], {"metadata[team]": "", "metadata[gone]": ""})

    assert answer["metadata"] == {"plan": "gold"}


def test_an_empty_metadata_unsets_every_key(shop_api: Platform) -> None:
    account = shop_api.create_account(**{"metadata[plan]": "gold", "metadata[team]": "red"})

    assert updated(shop_api, account["id"], {"metadata": ""})["metadata"] == {}


def test_metadata_is_merged_from_a_json_body_too(shop_api: Platform) -> None:
    account = shop_api.create_account(**{"metadata[plan]": "gold"})
    response = shop_api.post(
        f"/v1/accounts/{account['id']}", json={"metadata": {"plan": "", "seat": "2"}}
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["metadata"] == {"seat": "2"}


def test_an_update_that_would_pass_fifty_metadata_keys_is_refused_and_changes_nothing(
    shop_api: Platform,
) -> None:
    account = shop_api.create_account(**{f"metadata[k{i}]": "v" for i in range(50)})

    error = error_of(shop_api.post(f"/v1/accounts/{account['id']}", {"metadata[one]": "x"}), 400)
    # Unsetting one first makes room for another in the same request.
    room = updated(shop_api, account["id"], {"metadata[k0]": "", "metadata[one]": "x"})

    assert error["param"] == "metadata"
    assert len(room["metadata"]) == 50 and "one" in room["metadata"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"metadata[" + "k" * 41 + "]": "v"}, "metadata[" + "k" * 41 + "]"),
        ({"metadata[k]": "v" * 501}, "metadata[k]"),
        ({"metadata": "gold"}, "metadata"),
        ({"type": "custom"}, "type"),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_an_invalid_update_names_its_parameter_and_changes_nothing(
    shop_api: Platform, params: dict[str, str], param: str
) -> None:
    account = shop_api.create_account(**{"metadata[plan]": "gold"})

    error = error_of(shop_api.post(f"/v1/accounts/{account['id']}", params), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json() == account


def test_an_update_without_parameters_answers_the_account_unchanged(shop_api: Platform) -> None:
    account = shop_api.create_account(email="jenny@example.com")

    assert updated(shop_api, account["id"], {}) == account


# --- POST /v1/accounts/{id}: email ---


def test_the_email_of_an_account_not_yet_onboarded_can_be_changed(shop_api: Platform) -> None:
    account = shop_api.create_account(email="old@example.com")

    answer = updated(shop_api, account["id"], {"email": " new@example.com "})

    assert answer["email"] == "new@example.com"
    assert answer["details_submitted"] is False
    assert {k: v for k, v in answer.items() if k != "email"} == {
        k: v for k, v in account.items() if k != "email"
    }


def test_onboarding_after_an_email_change_binds_the_new_email_and_not_the_old(
    shop_api: Platform, browser: Browser, console: list[str], store: Store
) -> None:
    account = shop_api.create_account(email="old@example.com")
    updated(shop_api, account["id"], {"email": JENNY})

    onboard(browser, onboarding_url(shop_api, account["id"]), console)

    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json()["email"] == JENNY
    assert store.accounts.for_email("shop", JENNY) == account["id"]
    assert store.accounts.for_email("shop", "old@example.com") is None


def test_the_email_of_an_onboarded_account_cannot_be_changed_through_the_api(
    shop_api: Platform, browser: Browser, console: list[str], store: Store
) -> None:
    account = shop_api.create_account()
    onboard(browser, onboarding_url(shop_api, account["id"]), console)

    refused = shop_api.post(f"/v1/accounts/{account['id']}", {"email": "x@example.com"})
    error = error_of(refused, 400)
    # Metadata still can be, and sending the email it already has is no change (in any case).
    answer = updated(shop_api, account["id"], {"email": JENNY, "metadata[plan]": "gold"})
    same = updated(shop_api, account["id"], {"email": JENNY.upper()})

    assert error["param"] == "email"
    assert error["type"] == "invalid_request_error"
    assert answer["email"] == JENNY and answer["metadata"] == {"plan": "gold"}
    assert same == answer
    assert store.accounts.for_email("shop", JENNY) == account["id"]
    assert store.accounts.for_email("shop", "x@example.com") is None


def test_an_email_that_another_account_of_the_platform_has_is_refused(
    shop_api: Platform, browser: Browser, console: list[str]
) -> None:
    onboarded = shop_api.create_account()
    onboard(browser, onboarding_url(shop_api, onboarded["id"]), console)
    waiting = shop_api.create_account(email="someone@example.com")

    error = error_of(shop_api.post(f"/v1/accounts/{waiting['id']}", {"email": JENNY}), 400)

    assert error["param"] == "email"
    assert error["code"] == "resource_already_exists"
    assert shop_api.get(f"/v1/accounts/{waiting['id']}").get_json()["email"] == (
        "someone@example.com"
    )


def test_another_platforms_account_cannot_be_updated(app: Flask, shop_api: Platform) -> None:
    account = shop_api.create_account(**{"metadata[plan]": "gold"})
    blog = Platform(app, BLOG_KEY)

    error = error_of(blog.post(f"/v1/accounts/{account['id']}", {"metadata[plan]": "x"}), 404)
    missing = error_of(shop_api.post("/v1/accounts/acct_nope", {"metadata[plan]": "x"}), 404)

    assert error["code"] == missing["code"] == "resource_missing"
    assert shop_api.get(f"/v1/accounts/{account['id']}").get_json()["metadata"] == {"plan": "gold"}


def test_clients_that_share_a_sector_update_each_others_accounts(app: Flask) -> None:
    account = Platform(app, ACME_WEB_KEY).create_account()

    answer = updated(Platform(app, ACME_APP_KEY), account["id"], {"metadata[a]": "b"})

    assert answer["metadata"] == {"a": "b"}


def test_an_update_replays_with_its_idempotency_key(shop_api: Platform) -> None:
    account = shop_api.create_account()
    path = f"/v1/accounts/{account['id']}"

    first = shop_api.post(path, {"metadata[n]": "1"}, idempotency_key="set-n")
    updated(shop_api, account["id"], {"metadata[n]": "2"})
    replay = shop_api.post(path, {"metadata[n]": "1"}, idempotency_key="set-n")
    other = shop_api.post(path, {"metadata[n]": "3"}, idempotency_key="set-n")

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    assert error_of(other, 400)["type"] == "idempotency_error"
    assert shop_api.get(path).get_json()["metadata"] == {"n": "2"}


def test_an_update_does_not_overwrite_a_change_made_after_it_read_the_account(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    store = Store(redis_client, live_clock)
    accounts = Accounts(store, live_clock, SALT, Events(store, live_clock))
    account = accounts.create("shop", "custom", metadata={"a": "1"})
    stale = store.accounts.load(account.id)
    assert stale is not None
    accounts.update("shop", account.id, metadata={"b": "2"})

    swapped = store.accounts.swap(account.id, stale, stale.replace('"a"', '"c"'))
    merged = accounts.update("shop", account.id, metadata={"d": "4"})

    assert swapped is False
    assert merged is not None and merged.metadata == {"a": "1", "b": "2", "d": "4"}


class WritesBetween:
    """A Redis client through which the first read of ``key`` lets another writer in right
    after it: the race an update's compare and set must survive, made certain."""

    def __init__(self, client: redis.Redis, key: str, write: Callable[[], object]) -> None:
        self._client = client
        self._key = key
        self._write: Callable[[], object] | None = write

    def get(self, key: str) -> Any:
        value = self._client.get(key)
        if key == self._key and self._write is not None:
            write, self._write = self._write, None
            write()
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_update_that_lost_a_race_reads_again_and_keeps_the_other_change(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    direct = accounts_over(Store(redis_client, live_clock), live_clock)
    account = direct.create("shop", "custom", metadata={"a": "1"})
    racing = WritesBetween(
        redis_client,
        keyspace.account(account.id),
        lambda: direct.update("shop", account.id, metadata={"b": "2"}),
    )
    raced = accounts_over(Store(racing, live_clock), live_clock)  # type: ignore[arg-type]

    answer = raced.update("shop", account.id, metadata={"c": "3"})

    assert answer is not None and answer.metadata == {"a": "1", "b": "2", "c": "3"}
    assert direct.find("shop", account.id) == answer


def test_onboarding_that_raced_an_update_keeps_the_updated_metadata(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    direct = accounts_over(Store(redis_client, live_clock), live_clock)
    account = direct.create("shop", "custom", email="jenny@example.com")
    racing = WritesBetween(
        redis_client,
        keyspace.account(account.id),
        lambda: direct.update("shop", account.id, metadata={"plan": "gold"}),
    )
    raced = accounts_over(Store(racing, live_clock), live_clock)  # type: ignore[arg-type]

    assert raced.bind("shop", account.id, "jenny@example.com", "Jenny") is Binding.BOUND

    onboarded = direct.find("shop", account.id)
    assert onboarded is not None
    assert onboarded.details_submitted is True and onboarded.name == "Jenny"
    assert onboarded.metadata == {"plan": "gold"}


# --- HTTP Basic ---


def basic(user: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_the_api_key_as_basic_user_name_works_like_bearer(app: Flask) -> None:
    http = app.test_client()
    created = http.post("/v1/accounts", data={"type": "custom"}, headers=basic(SHOP_KEY))

    assert created.status_code == 200, created.get_json()
    listed = http.get("/v1/accounts", headers=basic(SHOP_KEY)).get_json()
    assert [a["id"] for a in listed["data"]] == [created.get_json()["id"]]


@pytest.mark.parametrize(
    "headers",
    [
        basic("sk_test_not_a_key_we_know"),
        basic(""),
        basic(SHOP_KEY, "a-password"),
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:").decode()},
    ],
)
def test_a_wrong_basic_credential_gets_the_same_401_as_a_wrong_bearer(
    app: Flask, headers: dict[str, str]
) -> None:
    response = app.test_client().get("/v1/accounts", headers=headers)
    error = error_of(response, 401)

    assert error["type"] == "authentication_error"
    assert SHOP_KEY not in response.get_data(as_text=True)
    assert "Basic" in response.headers["WWW-Authenticate"]


# --- 405 ---


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/accounts", {"GET", "POST"}),
        ("PATCH", "/v1/accounts/acct_1", {"GET", "POST", "DELETE"}),
        ("GET", "/v1/account_links", {"POST"}),
        ("DELETE", "/v1/account_links", {"POST"}),
        ("GET", "/v1/accounts/acct_1/login_links", {"POST"}),
        ("PUT", "/v1/accounts/acct_1/login_links", {"POST"}),
    ],
)
def test_every_wrong_method_on_v1_is_a_stripe_shaped_405_with_allow(
    app: Flask, method: str, path: str, allowed: set[str]
) -> None:
    for headers in ({"Authorization": f"Bearer {SHOP_KEY}"}, {}):
        response = app.test_client().open(path, method=method, headers=headers)
        error = error_of(response, 405)

        assert error["type"] == "invalid_request_error"
        assert error["code"] == "method_not_allowed"
        assert method in error["message"]
        assert set(response.headers["Allow"].split(", ")) >= allowed


def test_no_v1_path_answers_a_method_it_does_not_take_with_anything_but_a_stripe_405(
    app: Flask,
) -> None:
    taken: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            taken.setdefault(rule.rule, set()).update(rule.methods or ())
    assert len(taken) >= 4

    for template, methods in taken.items():
        path = template.replace("<account_id>", "acct_1")
        for method in {"GET", "POST", "DELETE", "PUT", "PATCH"} - methods:
            response = app.test_client().open(path, method=method)
            error = error_of(response, 405)

            assert error["code"] == "method_not_allowed", (method, path)
            assert set(response.headers["Allow"].split(", ")) == methods


# --- ending_before ---


def test_ending_before_pages_back_through_the_list_newest_first(
    shop_api: Platform, live_clock: FixedClock
) -> None:
    ids = []
    for _ in range(5):
        ids.append(shop_api.create_account()["id"])
        live_clock.advance(1)
    newest_first = list(reversed(ids))

    before_oldest = shop_api.get("/v1/accounts", {"limit": "2", "ending_before": ids[0]})
    before_middle = shop_api.get("/v1/accounts", {"limit": "2", "ending_before": ids[2]})
    before_newest = shop_api.get("/v1/accounts", {"ending_before": newest_first[0]})
    wide = shop_api.get("/v1/accounts", {"limit": "10", "ending_before": ids[0]})

    assert [a["id"] for a in before_oldest.get_json()["data"]] == newest_first[2:4]
    assert before_oldest.get_json()["has_more"] is True
    assert [a["id"] for a in before_middle.get_json()["data"]] == newest_first[:2]
    assert before_middle.get_json()["has_more"] is False
    assert before_newest.get_json()["data"] == []
    assert before_newest.get_json()["has_more"] is False
    assert [a["id"] for a in wide.get_json()["data"]] == newest_first[:4]
    assert wide.get_json()["has_more"] is False


def test_ending_before_an_unknown_account_is_refused(shop_api: Platform) -> None:
    error = error_of(shop_api.get("/v1/accounts", {"ending_before": "acct_nope"}), 400)

    assert error["param"] == "ending_before"
    assert error["code"] == "resource_missing"


def test_starting_after_and_ending_before_together_are_refused(shop_api: Platform) -> None:
    account = shop_api.create_account()["id"]
    query = {"starting_after": account, "ending_before": account}

    error = error_of(shop_api.get("/v1/accounts", query), 400)

    assert error["code"] == "parameters_exclusive"
    assert error["type"] == "invalid_request_error"


def accounts_over(store: Store, clock: FixedClock) -> Accounts:
    return Accounts(store, clock, SALT, Events(store, clock))
