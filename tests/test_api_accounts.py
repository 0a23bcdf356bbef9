"""The /v1 Accounts API: authentication, Stripe-shaped objects, lists and errors, isolation."""

from __future__ import annotations

import io
import json

import pytest
import redis
from flask import Flask

from oidc_link.cli import main
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.ids import digest
from oidc_link.logs import configure_logging
from oidc_link.store import keyspace
from tests.api_client import (
    ACME_APP_KEY,
    ACME_WEB_KEY,
    BLOG_KEY,
    SHOP_KEY,
    Platform,
    api_settings,
    error_of,
)
from tests.conftest import JENNY, ON_REDIS_CLUSTER, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


@pytest.fixture
def settings() -> Settings:
    """The conftest app, built with clients that have API keys."""
    return api_settings()


@pytest.fixture
def shop_api(app: Flask) -> Platform:
    return Platform(app, SHOP_KEY)


@pytest.fixture
def blog_api(app: Flask) -> Platform:
    return Platform(app, BLOG_KEY)


# --- Authentication ---


def test_a_request_without_an_api_key_is_refused(app: Flask) -> None:
    error = error_of(app.test_client().get("/v1/accounts"), 401)

    assert error["type"] == "authentication_error"


def test_an_api_requests_log_line_names_the_client_whose_key_it_carries(
    shop_api: Platform,
) -> None:
    output = io.StringIO()
    configure_logging("json", "INFO", stream=output)

    assert shop_api.get("/v1/accounts").status_code == 200

    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    (line,) = [line for line in lines if line.get("event") == "http.request"]
    assert (line["client_id"], line["route"], line["status"]) == ("shop", "/v1/accounts", 200)
    assert SHOP_KEY not in output.getvalue()


def test_a_wrong_api_key_is_refused_without_echoing_it(app: Flask) -> None:
    response = Platform(app, "sk_test_not_a_key_we_know").get("/v1/accounts")
    error = error_of(response, 401)

    assert error["type"] == "authentication_error"
    assert "sk_test_not_a_key_we_know" not in response.get_data(as_text=True)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_api_key_sent_with_another_scheme_is_refused(app: Flask) -> None:
    response = app.test_client().get("/v1/accounts", headers={"Authorization": f"Basic {SHOP_KEY}"})

    assert error_of(response, 401)["type"] == "authentication_error"


def test_a_client_secret_is_not_an_api_key(app: Flask) -> None:
    response = Platform(app, SHOP_SECRET).get("/v1/accounts")

    assert error_of(response, 401)["type"] == "authentication_error"


# --- Create, retrieve, list, delete ---


def test_creating_an_account_returns_a_stripe_shaped_object(
    shop_api: Platform, live_clock: FixedClock
) -> None:
    response = shop_api.post(
        "/v1/accounts",
        {"type": "express", "email": "jenny@example.com", "metadata[order]": "6735"},
    )

    assert response.status_code == 200
    assert response.headers["Request-Id"].startswith("req_")
    assert response.headers["Cache-Control"] == "no-store"
    account = response.get_json()
    assert account["id"].startswith("acct_")
    assert account == {
        "id": account["id"],
        "object": "account",
        "created": live_clock.now(),
        "type": "express",
        "email": "jenny@example.com",
        "details_submitted": False,
        "metadata": {"order": "6735"},
    }


def test_an_account_can_be_created_from_a_json_body(shop_api: Platform) -> None:
    response = shop_api.post(
        "/v1/accounts", json={"type": "custom", "metadata": {"plan": "gold", "seats": "3"}}
    )

    assert response.status_code == 200
    assert response.get_json()["type"] == "custom"
    assert response.get_json()["metadata"] == {"plan": "gold", "seats": "3"}
    assert response.get_json()["email"] is None


def test_a_created_account_can_be_retrieved(shop_api: Platform) -> None:
    created = shop_api.create_account(email="sam@example.com")

    response = shop_api.get(f"/v1/accounts/{created['id']}")

    assert response.status_code == 200
    assert response.get_json() == created


def test_accounts_are_listed_newest_first_in_pages(
    shop_api: Platform, live_clock: FixedClock
) -> None:
    ids = []
    for _ in range(5):
        ids.append(shop_api.create_account()["id"])
        live_clock.advance(1)
    newest_first = list(reversed(ids))

    first = shop_api.get("/v1/accounts", {"limit": "2"}).get_json()
    second = shop_api.get(
        "/v1/accounts", {"limit": "2", "starting_after": first["data"][-1]["id"]}
    ).get_json()
    last = shop_api.get(
        "/v1/accounts", {"limit": "2", "starting_after": second["data"][-1]["id"]}
    ).get_json()

    assert first["object"] == "list"
    assert first["url"] == "/v1/accounts"
    assert [a["id"] for a in first["data"]] == newest_first[:2]
    assert first["has_more"] is True
    assert [a["id"] for a in second["data"]] == newest_first[2:4]
    assert second["has_more"] is True
    assert [a["id"] for a in last["data"]] == newest_first[4:]
    assert last["has_more"] is False


def test_a_list_holds_ten_accounts_unless_told_otherwise(shop_api: Platform) -> None:
    for _ in range(12):
        shop_api.create_account()

    default = shop_api.get("/v1/accounts").get_json()
    everything = shop_api.get("/v1/accounts", {"limit": "100"}).get_json()

    assert len(default["data"]) == 10
    assert default["has_more"] is True
    assert len(everything["data"]) == 12
    assert everything["has_more"] is False


@pytest.mark.parametrize("limit", ["0", "101", "ten", "-1", "2.5", ""])
def test_a_limit_outside_one_to_a_hundred_is_refused(shop_api: Platform, limit: str) -> None:
    error = error_of(shop_api.get("/v1/accounts", {"limit": limit}), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == "limit"


def test_starting_after_an_unknown_account_is_refused(shop_api: Platform) -> None:
    error = error_of(shop_api.get("/v1/accounts", {"starting_after": "acct_nope"}), 400)

    assert error["param"] == "starting_after"
    assert error["code"] == "resource_missing"


def test_a_deleted_account_is_gone(shop_api: Platform) -> None:
    account = shop_api.create_account()

    deleted = shop_api.delete(f"/v1/accounts/{account['id']}")

    assert deleted.status_code == 200
    assert deleted.get_json() == {"id": account["id"], "object": "account", "deleted": True}
    assert error_of(shop_api.get(f"/v1/accounts/{account['id']}"), 404)["code"] == (
        "resource_missing"
    )
    assert shop_api.get("/v1/accounts").get_json()["data"] == []
    assert error_of(shop_api.delete(f"/v1/accounts/{account['id']}"), 404)["code"] == (
        "resource_missing"
    )


def test_an_unknown_account_is_missing(shop_api: Platform) -> None:
    error = error_of(shop_api.get("/v1/accounts/acct_doesnotexist"), 404)

    assert error == {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "message": "No such account: 'acct_doesnotexist'",
        "param": "account",
    }


# --- Ownership ---


def test_another_client_cannot_see_list_or_delete_an_account(
    shop_api: Platform, blog_api: Platform
) -> None:
    account = shop_api.create_account()

    assert error_of(blog_api.get(f"/v1/accounts/{account['id']}"), 404)["code"] == (
        "resource_missing"
    )
    assert error_of(blog_api.delete(f"/v1/accounts/{account['id']}"), 404)["code"] == (
        "resource_missing"
    )
    assert blog_api.get("/v1/accounts").get_json()["data"] == []
    assert shop_api.get(f"/v1/accounts/{account['id']}").status_code == 200


def test_clients_that_share_a_sector_share_their_accounts(app: Flask) -> None:
    web, mobile = Platform(app, ACME_WEB_KEY), Platform(app, ACME_APP_KEY)

    account = web.create_account()

    assert mobile.get(f"/v1/accounts/{account['id']}").get_json() == account
    assert [a["id"] for a in mobile.get("/v1/accounts").get_json()["data"]] == [account["id"]]
    assert Platform(app, SHOP_KEY).get(f"/v1/accounts/{account['id']}").status_code == 404


# --- Bad input: a clear 400 with the parameter, never a 500 or an HTML page ---


def test_type_is_required(shop_api: Platform) -> None:
    error = error_of(shop_api.post("/v1/accounts", {"email": "jenny@example.com"}), 400)

    assert error["code"] == "parameter_missing"
    assert error["param"] == "type"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"type": "standard"}, "type"),
        ({"type": "express", "email": "not-an-email"}, "email"),
        ({"type": "express", "email": "jenny\x00@example.com"}, "email"),
        ({"type": "express", "email": "jenny@exam\x7fple.com"}, "email"),
        ({"type": "express", "color": "blue"}, "color"),
        ({"type": "express", "metadata[" + "k" * 41 + "]": "v"}, "metadata[" + "k" * 41 + "]"),
        ({"type": "express", "metadata[note]": "x" * 501}, "metadata[note]"),
        ({"type": "express", "metadata": "not a hash"}, "metadata"),
        ({"type[x]": "express"}, "type"),
        ({"type": "express", "metadata[a][b]": "c"}, "metadata[a][b]"),
    ],
)
def test_an_invalid_parameter_is_named_in_the_error(
    shop_api: Platform, params: dict[str, str], param: str
) -> None:
    error = error_of(shop_api.post("/v1/accounts", params), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_metadata_is_limited_to_fifty_keys(shop_api: Platform) -> None:
    fifty = {f"metadata[key{i}]": "v" for i in range(50)}
    fifty_one = {**fifty, "metadata[key50]": "v"}

    assert shop_api.post("/v1/accounts", {"type": "express", **fifty}).status_code == 200
    error = error_of(shop_api.post("/v1/accounts", {"type": "express", **fifty_one}), 400)
    assert error["param"] == "metadata"


def test_a_parameter_given_twice_is_refused(app: Flask) -> None:
    response = app.test_client().post(
        "/v1/accounts",
        data="type=express&type=custom",
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {SHOP_KEY}"},
    )

    assert error_of(response, 400)["param"] == "type"


def test_an_unknown_query_parameter_is_refused(shop_api: Platform) -> None:
    account = shop_api.create_account()

    assert error_of(shop_api.get("/v1/accounts", {"expand": "x"}), 400)["param"] == "expand"
    response = shop_api.get(f"/v1/accounts/{account['id']}", {"foo": "1"})
    assert error_of(response, 400)["param"] == "foo"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[1, 2]", "application/json"),
        ('"express"', "application/json"),
        ("{not json", "application/json"),
        ('{"type": 7}', "application/json"),
        ('{"type": "express", "metadata": {"n": 1}}', "application/json"),
        ('{"type": "express", "metadata": ["a"]}', "application/json"),
        ("<account/>", "text/xml"),
        ("type=express&%ff=1", "application/x-www-form-urlencoded"),
    ],
)
def test_a_malformed_body_is_a_400_not_a_500(app: Flask, body: str, content_type: str) -> None:
    response = app.test_client().post(
        "/v1/accounts",
        data=body,
        content_type=content_type,
        headers={"Authorization": f"Bearer {SHOP_KEY}"},
    )

    assert error_of(response, 400)["type"] == "invalid_request_error"


def test_an_unknown_api_path_answers_in_json(shop_api: Platform) -> None:
    error = error_of(shop_api.get("/v1/customers"), 404)

    assert error["type"] == "invalid_request_error"


def test_a_wrong_method_answers_in_json(shop_api: Platform) -> None:
    response = shop_api.http.put("/v1/accounts", headers={"Authorization": f"Bearer {SHOP_KEY}"})

    assert error_of(response, 405)["type"] == "invalid_request_error"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


# --- Configuration and the hash-secret command ---


def test_an_api_key_entry_must_be_a_sha256_hash() -> None:
    config = provider_config()
    config["clients"][0]["api_keys"] = [SHOP_KEY, digest(SHOP_KEY).upper()]  # type: ignore[index]

    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")

    problems = [str(p) for p in raised.value.problems]
    assert sum("clients[0].api_keys" in p for p in problems) == 2


def test_hash_secret_prints_the_hash_of_a_key_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SHOP_KEY + "\n"))

    assert main(["hash-secret"]) == 0
    assert capsys.readouterr().out.strip() == digest(SHOP_KEY)


def test_hash_secret_new_makes_a_key_that_authenticates(
    capsys: pytest.CaptureFixture[str], app: Flask
) -> None:
    assert main(["hash-secret", "--new", "test"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())

    key, key_hash = lines["secret key"], lines["api_keys hash"]
    assert key.startswith("sk_test_")
    assert len(key) > 40
    assert key_hash == digest(key)
    config = provider_config()
    config["clients"][0]["api_keys"] = [key_hash]  # type: ignore[index]
    assert settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test").clients[0].api_keys


def test_hash_secret_without_input_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    assert main(["hash-secret"]) == 1
    assert "standard input" in capsys.readouterr().err


# --- Rate limit ---


def test_more_than_a_hundred_requests_a_second_per_key_are_refused_for_that_second(
    shop_api: Platform, blog_api: Platform, live_clock: FixedClock
) -> None:
    for _ in range(100):
        assert shop_api.get("/v1/accounts").status_code == 200

    refused = shop_api.get("/v1/accounts")

    error = error_of(refused, 429)
    assert error["type"] == "rate_limit_error"
    assert refused.headers["Retry-After"] == "1"
    assert blog_api.get("/v1/accounts").status_code == 200
    live_clock.advance(1)
    assert shop_api.get("/v1/accounts").status_code == 200


# --- OIDC sign-in: the sub is the user's account id at the client's owner ---


def test_signing_in_creates_the_account_whose_id_is_the_sub(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    shop_api: Platform,
    blog_api: Platform,
    live_clock: FixedClock,
) -> None:
    request, callback = sign_in(browser, shop, console)
    sub = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]

    account = shop_api.get(f"/v1/accounts/{sub}")

    assert account.status_code == 200
    assert account.get_json() == {
        "id": sub,
        "object": "account",
        "created": live_clock.now(),
        "type": "express",
        "email": JENNY,
        "details_submitted": True,
        "metadata": {},
    }
    assert error_of(blog_api.get(f"/v1/accounts/{sub}"), 404)["code"] == "resource_missing"


def test_signing_in_again_keeps_one_account_and_one_sub(
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    shop_api: Platform,
    live_clock: FixedClock,
) -> None:
    request, callback = sign_in(browser, shop, console)
    first = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
    live_clock.advance(60)
    request = shop.authorization_request()
    answer = browser.get(request.url)
    second = shop.validate_id_token(
        shop.exchange(answer.headers["Location"], request), request.nonce
    )["sub"]

    listed = shop_api.get("/v1/accounts").get_json()["data"]

    assert second == first
    assert [a["id"] for a in listed] == [first]
    assert listed[0]["created"] == live_clock.now() - 60


def test_a_deleted_sign_in_account_returns_with_the_same_id_at_the_next_sign_in(
    browser: Browser, shop: RelyingParty, console: list[str], shop_api: Platform
) -> None:
    # The id is derived from the user and the owner, so the relying party's sub is stable.
    request, callback = sign_in(browser, shop, console)
    sub = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
    assert shop_api.delete(f"/v1/accounts/{sub}").status_code == 200
    assert shop_api.get(f"/v1/accounts/{sub}").status_code == 404

    request = shop.authorization_request()
    answer = browser.get(request.url)
    again = shop.validate_id_token(
        shop.exchange(answer.headers["Location"], request), request.nonce
    )["sub"]

    assert again == sub
    assert shop_api.get(f"/v1/accounts/{sub}").get_json()["details_submitted"] is True


def test_accounts_are_kept_without_a_ttl_and_idempotency_keys_expire(
    shop_api: Platform, redis_client: redis.Redis
) -> None:
    account = shop_api.post("/v1/accounts", {"type": "express"}, idempotency_key="k").get_json()

    ttls = {key: redis_client.ttl(key) for key in redis_client.scan_iter(keyspace.pattern())}

    assert ttls.pop(keyspace.account(account["id"])) == -1
    assert ttls.pop(keyspace.accounts_of("shop")) == -1
    assert [key for key in ttls if ":idempotency:" in key]
    # The signing keys and the record of their rings stay too (keys.py, on purpose).
    kept = [key for key in ttls if ":keys:" in key or key.endswith(":keyrings")]
    # So do the outbox's stream of account.created and its index: the relay drains them.
    kept += [key for key in ttls if keyspace.kind_of(key) in ("outbox", "outbox_index")]
    assert all(ttl > 0 for key, ttl in ttls.items() if key not in kept), ttls
