"""What the outbox's deliveries write to the log (issue 18 item 5): a back-channel logout
notice and webhook deliveries, retried once and then delivered by the outbox's real relay
and worker, are logged by client, event and URL without its query; the logout token, the
webhook secret, the signature and the event's content never reach a log record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.services import Services, build_services
from tests.conftest import JENNY, SHOP_SECRET, provider_config
from tests.loopback_posts import serving_posts
from tests.relying_party import Browser, RelyingParty
from tests.test_backchannel_logout import LogoutReceiver, log_out, logout_receiver, signed_in
from tests.test_webhooks_through_the_worker import HOOK_SECRET, Receiver, nothing_left, run_outbox

# In the webhook URL's query: a platform may put a token there; the log keeps it out.
QUERY_TOKEN = "q-token-6b1f0c"


@pytest.fixture
def notices() -> Iterator[LogoutReceiver]:
    with logout_receiver() as state:
        state.statuses = [503]  # one retry, then delivered
        yield state


@pytest.fixture
def hooks(live_clock: FixedClock) -> Iterator[Receiver]:
    # One retry, then delivered (the receiver sees the path with its query).
    state = Receiver({f"/hooks?token={QUERY_TOKEN}": [500]}, live_clock)

    with serving_posts(state.answer) as base:
        state.base = base
        yield state


@pytest.fixture
def settings(notices: LogoutReceiver, hooks: Receiver) -> Settings:
    config = provider_config()
    shop = config["clients"][0]  # type: ignore[index]
    shop["backchannel_logout_uri"] = notices.url
    shop["webhooks"] = [
        {"url": f"{hooks.base}/hooks?token={QUERY_TOKEN}", "events": ["*"], "secret": "${HOOK}"}
    ]
    environment = {"SHOP_SECRET": SHOP_SECRET, "HOOK": HOOK_SECRET}
    return settings_from_mapping(config, environment, "test")


@pytest.fixture
def services(
    settings: Settings, redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Services:
    return build_services(
        settings,
        clock=live_clock,
        redis_client=redis_client,
        announce=console.append,
        metrics_registry=CollectorRegistry(),
    )


@pytest.fixture
def app(settings: Settings, services: Services) -> Flask:
    return create_app(settings, services)


def everything_logged(records: list[logging.LogRecord]) -> str:
    """Each record's message and every attribute it carries (the JSON log writes extras)."""
    return "\n".join(
        record.getMessage() + " " + " ".join(repr(value) for value in vars(record).values())
        for record in records
    )


def test_deliveries_log_where_and_how_but_never_the_logout_token_secret_signature_or_content(
    app: Flask,
    services: Services,
    browser: Browser,
    shop: RelyingParty,
    console: list[str],
    notices: LogoutReceiver,
    hooks: Receiver,
    redis_client: redis.Redis,
    live_clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = signed_in(browser, shop, console)
    log_out(browser, token["id_token"])

    with caplog.at_level(logging.DEBUG):
        run_outbox(services, live_clock)

    assert nothing_left(redis_client)
    [first, delivered] = [request.form["logout_token"][0] for request in notices.received]
    signatures = [signature for _, _, signature, _ in hooks.posts]
    bodies = [body.decode() for _, body, _, _ in hooks.posts]
    assert len(signatures) == 2 and all(signature.startswith("t=") for signature in signatures)
    logged = everything_logged(caplog.records)
    # Said: to whom, where (without the query), how it went.
    assert "Back-channel logout to client shop at " + notices.url in logged
    assert f"to {hooks.base}/hooks for client shop (HTTP 500)" in logged
    # Never said.
    secrets = [
        *(part for jwt in (first, delivered) for part in jwt.split(".")),
        HOOK_SECRET,
        QUERY_TOKEN,
        *(signature.partition("v1=")[2] for signature in signatures),
        *bodies,
        JENNY,
    ]
    assert [secret for secret in secrets if secret in logged] == []
