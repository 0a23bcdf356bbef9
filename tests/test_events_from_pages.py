"""Issue 18 item 1 through the real app: a first sign-in writes account.created, onboarding
through an Account Link account.updated, the account page's "Remove access" and "Sign out
everywhere" account.application.deauthorized and account.sessions.revoked; each once, with
``request`` null (the user made the change, not an API request), and shaped as
docs/openapi.json's Event. A refused sign-out writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask

from oidc_link.config import Settings, settings_from_mapping
from oidc_link.ids import digest
from oidc_link.store import keyspace
from oidc_link.store.outbox import OutboxEntry
from tests.api_client import Platform
from tests.conftest import ISSUER, JENNY, ON_REDIS_CLUSTER, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code
from tests.test_account_page_sectors import open_account_page
from tests.test_openapi import schema_validator

pytestmark = ON_REDIS_CLUSTER

PARTNER_KEY = "sk_test_partner_5tG7hJ9kL1mN3bV5cX7zQ9wE"
PARTNER_SECRET = "partner-secret-0123456789abcdef"
PARTNER_CALLBACK = "https://partner.example.test/callback"
EVENT = schema_validator("/components/schemas/Event")


@pytest.fixture
def settings() -> Settings:
    """The usual clients, and Partner App: third-party (asks consent), with an API key."""
    config = provider_config()
    config["clients"].append(  # type: ignore[union-attr]
        {
            "client_id": "partner",
            "client_secret": PARTNER_SECRET,
            "redirect_uris": [PARTNER_CALLBACK],
            "name": "Partner App",
            "third_party": True,
            "api_keys": [digest(PARTNER_KEY)],
        }
    )
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def told(redis_client: redis.Redis, key: str) -> list[dict[str, Any]]:
    """The events in ``key``'s outbox stream, each checked against the documented Event."""
    bodies = [
        OutboxEntry.from_fields(fields).body
        for _, fields in redis_client.xrange(keyspace.outbox(key))
    ]
    shown = [{k: v for k, v in body.items() if k not in ("owner", "client_ids")} for body in bodies]
    for event in shown:
        assert EVENT.is_valid(event), list(EVENT.iter_errors(event))
    return bodies


def signed_in_with_consent(app: Flask, console: list[str]) -> str:
    """Jenny signs in at Partner App for the first time and allows it; her ``sub``."""
    partner = RelyingParty(app, ISSUER, "partner", PARTNER_CALLBACK, PARTNER_SECRET)
    browser = Browser(app, ISSUER)
    request = partner.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    consent = browser.submit("/code", code=announced_code(console))
    browser.get(consent.headers["Location"])  # the consent page
    answer = browser.submit("/allow")
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)
    token = partner.exchange(answer.headers["Location"], request)
    return partner.validate_id_token(token, request.nonce)["sub"]


def posted(page: Browser, action: str) -> int:
    csrf_token = page.soup().find("input", attrs={"name": "csrf_token"})["value"]
    answer = page.client.post(action, data={"csrf_token": csrf_token}, base_url=ISSUER)
    return answer.status_code


def test_a_first_sign_in_and_the_account_pages_actions_each_write_their_event(
    app: Flask, console: list[str], redis_client: redis.Redis
) -> None:
    sub = signed_in_with_consent(app, console)
    [created] = told(redis_client, keyspace.account(sub))
    assert created["type"] == "account.created"
    assert created["request"] == {"id": None, "idempotency_key": None}
    assert created["client_ids"] == ["partner"]
    page = open_account_page(app, Platform(app, PARTNER_KEY), sub)

    assert posted(page, "/account/consents/partner/revoke") == 303
    assert posted(page, "/account/consents/partner/revoke") == 303  # nothing left to remove
    assert posted(page, "/account/sign-out-everywhere") == 303

    [deauthorized] = told(redis_client, keyspace.consent("partner", sub))
    assert deauthorized["type"] == "account.application.deauthorized"
    assert deauthorized["account"] == sub
    assert deauthorized["data"]["object"] == {
        "id": "partner",
        "object": "application",
        "name": "Partner App",
    }
    [revoked] = told(redis_client, keyspace.account_families(sub))
    assert revoked["type"] == "account.sessions.revoked"
    assert revoked["data"]["object"] == created["data"]["object"]
    assert revoked["request"] == {"id": None, "idempotency_key": None}
    assert len(told(redis_client, keyspace.account(sub))) == 1


def test_onboarding_through_an_account_link_writes_account_updated(
    app: Flask, console: list[str], redis_client: redis.Redis
) -> None:
    platform = Platform(app, PARTNER_KEY)
    account = platform.create_account(email=JENNY)
    link = platform.post(
        "/v1/account_links",
        {
            "account": account["id"],
            "type": "account_onboarding",
            "refresh_url": "https://partner.example.test/refresh",
            "return_url": "https://partner.example.test/return",
        },
    ).get_json()
    browser = Browser(app, ISSUER)
    browser.start(link["url"])
    browser.submit("/email", email=JENNY)
    finished = browser.submit("/code", code=announced_code(console))
    assert finished.headers["Location"] == "https://partner.example.test/return"

    created, updated = told(redis_client, keyspace.account(account["id"]))
    assert created["request"]["id"] is not None
    assert updated["type"] == "account.updated"
    assert updated["data"]["previous_attributes"] == {"details_submitted": False}
    assert updated["data"]["object"] == platform.get(f"/v1/accounts/{account['id']}").get_json()
    assert updated["request"] == {"id": None, "idempotency_key": None}


def test_a_refused_sign_out_everywhere_writes_no_event(
    app: Flask, redis_client: redis.Redis
) -> None:
    platform = Platform(app, PARTNER_KEY)
    account = platform.create_account(email=JENNY)  # not verified: the page refuses
    page = open_account_page(app, platform, account["id"])

    assert posted(page, "/account/sign-out-everywhere") == 403

    assert told(redis_client, keyspace.account_families(account["id"])) == []
    assert [e["type"] for e in told(redis_client, keyspace.account(account["id"]))] == [
        "account.created"
    ]
