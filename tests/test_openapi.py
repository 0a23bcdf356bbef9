"""docs/openapi.json tells the truth: real /v1 responses validate against its schemas, and
every documented operation and status is exercised here."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.ids import digest
from oidc_link.platform.idempotency import Idempotency, Started, fingerprint
from oidc_link.store import Store, keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.api_client import BLOG_KEY, SHOP_KEY, Platform, api_settings

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
DOCUMENT = json.loads(DOCUMENT_PATH.read_text())
DOCUMENT_URI = "urn:oidc-link:openapi"
REGISTRY = Registry().with_resource(
    DOCUMENT_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)


@pytest.fixture
def settings() -> Settings:
    return api_settings()


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (components/responses, headers, parameters)."""
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, item in DOCUMENT["paths"].items():
        pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


def schema_validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=REGISTRY)


class Checker:
    """Validates responses against the document and records what was covered."""

    def __init__(self) -> None:
        self.covered: set[tuple[str, str, str]] = set()

    def check(self, method: str, path: str, response: TestResponse) -> TestResponse:
        template, operation = operation_for(method, path)
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template} {status} undocumented"
        documented = resolve(operation["responses"][status])
        assert response.mimetype in documented["content"]
        for name, header in documented.get("headers", {}).items():
            header = resolve(header)
            if header.get("required"):
                assert name in response.headers, f"{name} missing"
            if name in response.headers:
                errors = list(
                    Draft202012Validator(header["schema"]).iter_errors(response.headers[name])
                )
                assert not errors, errors
        schema = documented["content"][response.mimetype]["schema"]
        pointer = schema["$ref"].removeprefix("#")
        errors = list(schema_validator(pointer).iter_errors(response.get_json()))
        assert not errors, [error.message for error in errors]
        self.covered.add((template, method.lower(), status))
        return response


def documented_responses(*statuses: str) -> set[tuple[str, str, str]]:
    """Every documented (path, method, status); only ``statuses`` when given."""
    return {
        (template, method, status)
        for template, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        for status in operation["responses"]
        if not statuses or status in statuses
    }


def test_the_document_is_openapi_3_1_with_valid_json_schemas() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    # Every $ref points at something that exists.
    for ref in re.findall(r'"\$ref": "#/([^"]+)"', DOCUMENT_PATH.read_text()):
        target: Any = DOCUMENT
        for part in ref.split("/"):
            assert part in target, ref
            target = target[part]


def test_the_documented_request_parameters_accept_what_the_api_accepts() -> None:
    validator = schema_validator("/components/schemas/AccountCreateParams")

    assert validator.is_valid({"type": "express", "email": "a@b.co", "metadata": {"k": "v"}})
    assert not validator.is_valid({"type": "standard"})
    assert not validator.is_valid({"type": "express", "color": "blue"})
    assert not validator.is_valid({"email": "a@b.co"})
    assert not validator.is_valid({"type": "express", "metadata": {"k" * 41: "v"}})


def test_the_documented_update_parameters_accept_what_the_api_accepts() -> None:
    validator = schema_validator("/components/schemas/AccountUpdateParams")

    assert validator.is_valid({"email": "a@b.co", "metadata": {"k": "v", "gone": ""}})
    assert validator.is_valid({"metadata": ""})
    assert validator.is_valid({})
    assert not validator.is_valid({"metadata": "gold"})
    assert not validator.is_valid({"type": "custom"})


def test_a_wrong_method_and_basic_auth_answer_as_the_document_says(app: Flask) -> None:
    """405 is not an operation of its own: its body is the documented Error object."""
    http = app.test_client()
    token = base64.b64encode(f"{SHOP_KEY}:".encode()).decode()

    wrong_method = http.put("/v1/accounts", headers={"Authorization": f"Basic {token}"})
    with_basic = http.get("/v1/accounts", headers={"Authorization": f"Basic {token}"})

    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["Allow"]
    assert schema_validator("/components/schemas/Error").is_valid(wrong_method.get_json())
    assert "method_not_allowed" in json.dumps(DOCUMENT["components"]["schemas"]["Error"])
    assert "secretKeyBasic" in {name for entry in DOCUMENT["security"] for name in entry}
    Checker().check("GET", "/v1/accounts", with_basic)
    assert with_basic.status_code == 200


def test_every_documented_response_is_what_the_api_sends(
    app: Flask, redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    checker = Checker()
    shop, blog = Platform(app, SHOP_KEY), Platform(app, BLOG_KEY)
    nobody = Platform(app, "sk_test_unknown")

    # POST /v1/accounts
    created = checker.check(
        "POST",
        "/v1/accounts",
        shop.post(
            "/v1/accounts",
            {"type": "express", "email": "jenny@example.com", "metadata[a]": "b"},
            idempotency_key="first",
        ),
    ).get_json()
    replay = shop.post(
        "/v1/accounts",
        {"type": "express", "email": "jenny@example.com", "metadata[a]": "b"},
        idempotency_key="first",
    )
    checker.check("POST", "/v1/accounts", replay)
    assert replay.headers["Idempotent-Replayed"] == "true"
    checker.check("POST", "/v1/accounts", shop.post("/v1/accounts", {"type": "x"}))
    checker.check("POST", "/v1/accounts", nobody.post("/v1/accounts", {"type": "custom"}))
    started = Idempotency(Store(redis_client, live_clock)).begin(
        digest(SHOP_KEY),
        "running",
        fingerprint("POST", "/v1/accounts", {"type": "custom"}),
        SHOP_KEY,
    )
    assert isinstance(started, Started)
    checker.check(
        "POST",
        "/v1/accounts",
        shop.post("/v1/accounts", {"type": "custom"}, idempotency_key="running"),
    )
    live_clock.advance(1)
    shop.create_account()

    # POST /v1/account_links and /v1/accounts/{account}/login_links
    express = shop.create_account()["id"]
    custom = shop.create_account(type="custom")["id"]
    account_link_params = {
        "account": express,
        "type": "account_onboarding",
        "refresh_url": "https://shop.example.test/refresh",
        "return_url": "https://shop.example.test/return",
    }
    login_path = f"/v1/accounts/{express}/login_links"
    for path, params in (("/v1/account_links", account_link_params), (login_path, {})):
        checker.check("POST", path, shop.post(path, params, idempotency_key="new-" + path))
        checker.check("POST", path, shop.post(path, params, idempotency_key="new-" + path))
        checker.check("POST", path, shop.post(path, {**params, "x": "1"}))
        checker.check("POST", path, nobody.post(path, params))
        running = Idempotency(Store(redis_client, live_clock)).begin(
            digest(SHOP_KEY), "busy-" + path, fingerprint("POST", path, params), SHOP_KEY
        )
        assert isinstance(running, Started)
        checker.check("POST", path, shop.post(path, params, idempotency_key="busy-" + path))
    checker.check("POST", "/v1/account_links", blog.post("/v1/account_links", account_link_params))
    checker.check("POST", login_path, blog.post(login_path))
    checker.check(
        "POST",
        "/v1/account_links",
        shop.post("/v1/account_links", {**account_link_params, "return_url": "x"}),
    )
    custom_login = f"/v1/accounts/{custom}/login_links"
    checker.check("POST", custom_login, shop.post(custom_login))

    # POST /v1/accounts/{account}
    update_path = f"/v1/accounts/{express}"
    changes = {"metadata[a]": "c", "email": "jenny.new@example.com"}
    for _ in range(2):  # the second a replay
        checker.check("POST", update_path, shop.post(update_path, changes, idempotency_key="up"))
    checker.check("POST", update_path, shop.post(update_path, json={"metadata": ""}))
    checker.check("POST", update_path, shop.post(update_path, {"type": "custom"}))
    checker.check("POST", update_path, nobody.post(update_path, changes))
    checker.check("POST", update_path, blog.post(update_path, changes))
    busy = Idempotency(Store(redis_client, live_clock)).begin(
        digest(SHOP_KEY),
        "busy-update",
        fingerprint("POST", update_path, {"metadata": {"a": "c"}, "email": changes["email"]}),
        SHOP_KEY,
    )
    assert isinstance(busy, Started)
    checker.check(
        "POST", update_path, shop.post(update_path, changes, idempotency_key="busy-update")
    )

    # GET /v1/accounts
    checker.check("GET", "/v1/accounts", shop.get("/v1/accounts", {"limit": "1"}))
    checker.check("GET", "/v1/accounts", shop.get("/v1/accounts", {"ending_before": custom}))
    checker.check(
        "GET", "/v1/accounts", shop.get("/v1/accounts", {"ending_before": express, "limit": "1"})
    )
    checker.check("GET", "/v1/accounts", shop.get("/v1/accounts", {"limit": "1000"}))
    checker.check("GET", "/v1/accounts", nobody.get("/v1/accounts"))

    # GET and DELETE /v1/accounts/{account}
    path = f"/v1/accounts/{created['id']}"
    checker.check("GET", path, shop.get(path))
    checker.check("GET", path, shop.get(path, {"expand": "x"}))
    checker.check("GET", path, nobody.get(path))
    checker.check("GET", path, blog.get(path))
    checker.check("DELETE", path, shop.delete(path + "?x=1"))
    checker.check("DELETE", path, nobody.delete(path))
    checker.check("DELETE", path, shop.delete(path))
    checker.check("DELETE", path, shop.delete(path))

    # GET /v1/events and /v1/events/{id}: the events of the changes above, handed on from
    # the outbox as its relay hands them on.
    kept = Store(redis_client, live_clock)
    for stream in redis_client.zrange(keyspace.OUTBOX_INDEX, 0, -1):
        for _, fields in redis_client.xrange(stream):
            kept.events.save(OutboxEntry.from_fields(fields).body)
    events = checker.check("GET", "/v1/events", shop.get("/v1/events", {"limit": "100"}))
    told = {event["type"] for event in events.get_json()["data"]}
    assert told == {"account.created", "account.updated", "account.deleted"}
    unknown_cursor = {"type": "account.updated", "created[gte]": "0", "ending_before": "evt_x"}
    checker.check("GET", "/v1/events", shop.get("/v1/events", unknown_cursor))
    checker.check("GET", "/v1/events", shop.get("/v1/events", {"created[lt]": "0"}))
    checker.check("GET", "/v1/events", nobody.get("/v1/events"))
    event_path = f"/v1/events/{events.get_json()['data'][0]['id']}"
    checker.check("GET", event_path, shop.get(event_path))
    checker.check("GET", event_path, shop.get(event_path, {"expand": "x"}))
    checker.check("GET", event_path, nobody.get(event_path))
    checker.check("GET", event_path, blog.get(event_path))

    # Every operation answers 429 once the key's requests for this second are spent.
    spent = [shop.get("/v1/accounts").status_code for _ in range(101)]
    assert spent[-1] == 429
    checker.check("POST", "/v1/accounts", shop.post("/v1/accounts", {"type": "custom"}))
    checker.check("GET", "/v1/accounts", shop.get("/v1/accounts"))
    checker.check("GET", path, shop.get(path))
    checker.check("DELETE", path, shop.delete(path))
    checker.check("POST", "/v1/account_links", shop.post("/v1/account_links", account_link_params))
    checker.check("POST", login_path, shop.post(login_path))
    checker.check("POST", update_path, shop.post(update_path, changes))
    checker.check("GET", "/v1/events", shop.get("/v1/events"))
    checker.check("GET", event_path, shop.get(event_path))

    # 503 (Redis unreachable) is exercised in tests/test_redis_outage.py.
    assert checker.covered == documented_responses() - documented_responses("503")
