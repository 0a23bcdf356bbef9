"""Prometheus metrics, driven through the real app: each counter moves by exactly what
happened, labels stay within their fixed sets, and worker processes add up on one endpoint."""

from __future__ import annotations

import multiprocessing
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Lifetimes, Limits, Settings, settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.ids import digest
from oidc_link.interaction import Problem
from oidc_link.link import (
    CheckAhead,
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)
from oidc_link.link.measured import MeasuredLinkClient
from oidc_link.metrics import (
    LINK_OUTCOMES,
    OTHER,
    RATE_LIMITS,
    SIGN_IN_FAILURE_REASONS,
    Metrics,
    MetricsServer,
    serve_metrics,
    wipe_shared_values,
)
from oidc_link.services import Services, build_services
from oidc_link.web.api.auth import REQUESTS_PER_SECOND
from tests.conftest import ISSUER, JENNY, SHOP_CALLBACK, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code, wrong_code_for

SHOP_API_KEY = "sk_test_metrics_shop_Xq4mR8vT2kL9pW3z"
OFFLINE = "openid email offline_access"


def metrics_settings(
    environ: dict[str, str] | None = None,
    limits: dict[str, int] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Settings:
    config = provider_config()
    config["clients"][0]["api_keys"] = [digest(SHOP_API_KEY)]  # type: ignore[index]
    if limits:
        config["limits"] = limits
    if metrics is not None:
        config["metrics"] = metrics
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET, **(environ or {})}, "test")


def app_counting_into(
    registry: CollectorRegistry, clock: FixedClock, console: list[str], **settings: Any
) -> Flask:
    configured = metrics_settings(**settings)
    services = build_services(
        configured,
        clock=clock,
        redis_client=fakeredis.FakeRedis(decode_responses=True),
        announce=console.append,
        metrics_registry=registry,
    )
    return create_app(configured, services)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; a series never recorded counts as 0."""
    return registry.get_sample_value(name, labels) or 0.0


def series(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    """The label sets of every sample named ``name``."""
    return [
        sample.labels
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def app(registry: CollectorRegistry, live_clock: FixedClock, console: list[str]) -> Flask:
    return app_counting_into(registry, live_clock, console)


class UnavailableLink:
    """A Link network that answers every call with one kind of error."""

    def __init__(self, kind: LinkErrorKind) -> None:
        self.kind = kind

    def lookup(self, email: str) -> LookupResult:
        raise LinkError(self.kind)

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        raise LinkError(self.kind)

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        return None

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        raise LinkError(self.kind)


def begin(app: Flask, email: str = JENNY, scope: str = "openid email profile") -> Any:
    """The shop's sign-in, up to the submitted email: the browser, the RP and the request."""
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET, scope=scope)
    request = shop.authorization_request()
    browser = Browser(app, ISSUER)
    browser.start(request.url)
    browser.submit("/email", email=email)
    return browser, shop, request


def test_a_sign_in_moves_each_of_its_counters_by_exactly_one(
    app: Flask, registry: CollectorRegistry, console: list[str]
) -> None:
    browser, shop, request = begin(app)
    callback = browser.submit("/code", code=announced_code(console))
    shop.exchange(callback.headers["Location"], request)

    assert value(registry, "oidc_link_sign_ins_started_total", client_id="shop") == 1
    assert value(registry, "oidc_link_sms_sent_total", client_id="shop") == 1
    assert value(registry, "oidc_link_sign_ins_completed_total", client_id="shop") == 1
    assert series(registry, "oidc_link_sign_ins_failed_total") == []
    assert series(registry, "oidc_link_rate_limited_total") == []
    issued = "oidc_link_tokens_issued_total"
    assert value(registry, issued, grant_type="authorization_code", client_id="shop") == 1
    assert series(registry, issued) == [{"grant_type": "authorization_code", "client_id": "shop"}]
    link_calls = "oidc_link_link_request_duration_seconds_count"
    for operation in ("lookup", "start_verification", "authenticate"):
        assert value(registry, link_calls, operation=operation, outcome="ok") == 1
    assert len(series(registry, link_calls)) == 3


def test_a_refresh_is_counted_under_its_own_grant_type(
    app: Flask, registry: CollectorRegistry, console: list[str], live_clock: FixedClock
) -> None:
    browser, shop, request = begin(app, scope=OFFLINE)
    callback = browser.submit("/code", code=announced_code(console))
    first = shop.exchange(callback.headers["Location"], request)

    def refresh() -> int:
        return (
            app.test_client()
            .post(
                "/token",
                data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                auth=("shop", SHOP_SECRET),
                base_url=ISSUER,
            )
            .status_code
        )

    assert refresh() == 200
    live_clock.advance(Lifetimes().refresh_grace + 1)
    # The token was rotated away and its grace is over: refused, and not counted.
    assert refresh() == 400

    issued = "oidc_link_tokens_issued_total"
    assert value(registry, issued, grant_type="authorization_code", client_id="shop") == 1
    assert value(registry, issued, grant_type="refresh_token", client_id="shop") == 1


def test_failed_sign_ins_are_counted_by_reason(
    registry: CollectorRegistry, live_clock: FixedClock, console: list[str]
) -> None:
    # Below Link's own limit of wrong codes, so that ours is the one reached.
    app = app_counting_into(registry, live_clock, console, limits={"code_attempts": 3})
    begin(app, "nobody@example.com")
    browser, _, _ = begin(app)
    wrong = wrong_code_for(announced_code(console))
    for _ in range(3):
        browser.submit("/code", code=wrong)
    browser.submit("/cancel")

    failed = "oidc_link_sign_ins_failed_total"
    assert value(registry, failed, client_id="shop", reason="not_on_link") == 1
    assert value(registry, failed, client_id="shop", reason="wrong_code") == 2
    assert value(registry, failed, client_id="shop", reason="too_many_attempts") == 1
    assert value(registry, failed, client_id="shop", reason="cancelled") == 1
    assert len(series(registry, failed)) == 4
    assert value(registry, "oidc_link_rate_limited_total", limit="code_attempts") == 1
    assert value(registry, "oidc_link_sign_ins_started_total", client_id="shop") == 2
    assert value(registry, "oidc_link_sign_ins_completed_total", client_id="shop") == 0


def test_acting_on_an_expired_sign_in_counts_it_as_expired(
    app: Flask, registry: CollectorRegistry, live_clock: FixedClock
) -> None:
    shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
    browser = Browser(app, ISSUER)
    browser.start(shop.authorization_request().url)
    live_clock.advance(601)

    browser.submit("/email", email=JENNY)

    failed = "oidc_link_sign_ins_failed_total"
    assert value(registry, failed, client_id="shop", reason="expired") == 1
    assert series(registry, "oidc_link_link_request_duration_seconds_count") == []


def test_link_being_down_is_timed_with_its_outcome_and_counted_as_a_failure(
    registry: CollectorRegistry, live_clock: FixedClock
) -> None:
    settings = metrics_settings()
    ticks = iter(range(1000))
    # A clock that moves half a second each time it is read: every call lasts 0.5 s.
    metrics = Metrics(registry, ["shop"], timer=lambda: next(ticks) * 0.5)
    base = build_services(
        settings, clock=live_clock, redis_client=fakeredis.FakeRedis(decode_responses=True)
    )
    link = MeasuredLinkClient(UnavailableLink(LinkErrorKind.UNAVAILABLE), metrics)
    app = create_app(settings, Services(settings, live_clock, base.store, base.keys, link, metrics))

    browser, _, _ = begin(app)
    browser.submit("/email", email=JENNY)

    duration = "oidc_link_link_request_duration_seconds"
    labels = {"operation": "lookup", "outcome": "unavailable"}
    assert value(registry, duration + "_count", **labels) == 2
    assert value(registry, duration + "_sum", **labels) == 1.0
    assert value(registry, duration + "_bucket", le="0.5", **labels) == 2
    assert value(registry, duration + "_bucket", le="0.25", **labels) == 0
    failed = "oidc_link_sign_ins_failed_total"
    assert value(registry, failed, client_id="shop", reason="link_unavailable") == 2


def test_a_link_error_passes_through_the_measured_client_unchanged(
    registry: CollectorRegistry,
) -> None:
    metrics = Metrics(registry)
    link = MeasuredLinkClient(UnavailableLink(LinkErrorKind.RATE_LIMITED), metrics)

    with pytest.raises(LinkError) as raised:
        link.authenticate(JENNY, "secret", "123456")

    assert raised.value.kind is LinkErrorKind.RATE_LIMITED
    count = "oidc_link_link_request_duration_seconds_count"
    assert value(registry, count, operation="authenticate", outcome="rate_limited") == 1


def test_http_latency_is_labelled_by_endpoint_name_not_by_path(
    app: Flask, registry: CollectorRegistry
) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {SHOP_API_KEY}"}
    for account_id in ("acct_first", "acct_second", "acct_third"):
        assert client.get(f"/v1/accounts/{account_id}", headers=auth).status_code == 404
    client.get("/no/such/page/acct_first")
    client.get("/.well-known/openid-configuration")

    histogram = "oidc_link_http_request_duration_seconds_count"
    assert (
        value(registry, histogram, endpoint="api.retrieve_account", method="GET", status="404") == 3
    )
    assert value(registry, histogram, endpoint="unmatched", method="GET", status="404") == 1
    assert (
        value(registry, histogram, endpoint="protocol.discovery", method="GET", status="200") == 1
    )
    assert len(series(registry, histogram)) == 3
    every_label = [v for labels in series(registry, histogram) for v in labels.values()]
    assert not [label for label in every_label if "acct_" in label or "/" in label]


def test_an_unknown_http_method_is_recorded_as_other(
    app: Flask, registry: CollectorRegistry
) -> None:
    app.test_client().open("/token", method="BREW")

    histogram = "oidc_link_http_request_duration_seconds_count"
    assert series(registry, histogram) == [
        {"endpoint": "unmatched", "method": OTHER, "status": "405"}
    ]


def test_rate_limit_hits_are_counted_by_limit(
    registry: CollectorRegistry, live_clock: FixedClock, console: list[str]
) -> None:
    app = app_counting_into(registry, live_clock, console, limits={"lookups_per_ip": 1})
    begin(app, "nobody@example.com")

    browser, _, _ = begin(app, "nobody2@example.com")

    assert browser.page.status_code == 429
    assert value(registry, "oidc_link_rate_limited_total", limit="lookups_per_ip") == 1
    failed = "oidc_link_sign_ins_failed_total"
    assert value(registry, failed, client_id="shop", reason="too_many_lookups") == 1


def test_a_new_code_asked_too_soon_is_a_cooldown_hit_and_a_later_one_another_sms(
    app: Flask, registry: CollectorRegistry, live_clock: FixedClock
) -> None:
    browser, _, _ = begin(app)
    browser.submit("/resend")
    live_clock.advance(30)
    browser.submit("/resend")

    assert value(registry, "oidc_link_rate_limited_total", limit="resend_cooldown") == 1
    assert value(registry, "oidc_link_sms_sent_total", client_id="shop") == 2


def test_the_api_rate_limit_is_counted(app: Flask, registry: CollectorRegistry) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {SHOP_API_KEY}"}
    # The fixed clock keeps every request in one one-second window.
    statuses = [
        client.get("/v1/accounts", headers=auth).status_code for _ in range(REQUESTS_PER_SECOND + 2)
    ]

    assert statuses.count(429) == 2
    assert value(registry, "oidc_link_rate_limited_total", limit="api_requests_per_second") == 2


def test_labels_stay_within_their_fixed_sets(registry: CollectorRegistry) -> None:
    metrics = Metrics.for_settings(metrics_settings(), registry)

    metrics.sign_in_started("not-a-configured-client")
    metrics.sign_in_failed("shop", "a reason nobody listed")
    metrics.link_call("delete_everything", "surprise", 0.1)
    metrics.token_issued("password", "shop")
    metrics.rate_limited("made_up_limit")

    assert value(registry, "oidc_link_sign_ins_started_total", client_id=OTHER) == 1
    failed = "oidc_link_sign_ins_failed_total"
    assert value(registry, failed, client_id="shop", reason=OTHER) == 1
    count = "oidc_link_link_request_duration_seconds_count"
    assert value(registry, count, operation=OTHER, outcome=OTHER) == 1
    issued = "oidc_link_tokens_issued_total"
    assert value(registry, issued, grant_type=OTHER, client_id="shop") == 1
    assert value(registry, "oidc_link_rate_limited_total", limit=OTHER) == 1


def test_every_reason_the_code_can_give_has_its_own_label() -> None:
    assert {problem.value for problem in Problem} <= SIGN_IN_FAILURE_REASONS
    assert {kind.value for kind in LinkErrorKind} <= LINK_OUTCOMES
    counted_limits = {name for name in Limits.__dataclass_fields__ if not name.endswith("_window")}
    assert counted_limits <= RATE_LIMITS


def test_two_apps_in_one_process_count_apart() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics.for_settings(metrics_settings(), first).sms_sent("shop")

    Metrics.for_settings(metrics_settings(), second)

    assert value(first, "oidc_link_sms_sent_total", client_id="shop") == 1
    assert value(second, "oidc_link_sms_sent_total", client_id="shop") == 0


# --- The scrape endpoint. ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: MetricsServer) -> tuple[str, Samples]:
    """The endpoint's content type and samples, parsed as Prometheus parses them."""
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as answer:
        content_type = answer.headers["Content-Type"]
        text = answer.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return content_type, samples


@pytest.fixture
def servers() -> Iterator[list[MetricsServer]]:
    started: list[MetricsServer] = []
    yield started
    for server in started:
        server.close()


def record_in_a_worker(directory: str, sign_ins: int) -> None:
    """A worker process's share: runs in a spawned process, with the shared directory
    already in its environment (so prometheus-client starts in multi-process mode)."""
    metrics = Metrics.for_settings(metrics_settings({"PROMETHEUS_MULTIPROC_DIR": directory}))
    for _ in range(sign_ins):
        metrics.sign_in_started("shop")
        metrics.link_call("lookup", "ok", 0.25)


def test_worker_processes_add_up_on_the_metrics_endpoint(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, servers: list[MetricsServer]
) -> None:
    shared = str(tmp_path)
    # Spawned processes inherit this environment; prometheus-client reads it on import.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", shared)
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=record_in_a_worker, args=(shared, n)) for n in (3, 4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    settings = metrics_settings(
        {"PROMETHEUS_MULTIPROC_DIR": shared},
        metrics={"enabled": True, "host": "127.0.0.1", "port": free_port()},
    )

    server = serve_metrics(settings)
    assert server is not None
    servers.append(server)
    content_type, samples = scrape(server)

    assert content_type.startswith("text/plain; version=0.0.4")
    assert samples[("oidc_link_sign_ins_started_total", (("client_id", "shop"),))] == 7
    lookups = (("operation", "lookup"), ("outcome", "ok"))
    assert samples[("oidc_link_link_request_duration_seconds_count", lookups)] == 7
    assert samples[("oidc_link_link_request_duration_seconds_sum", lookups)] == 1.75

    wipe_shared_values(settings)
    assert list(tmp_path.iterdir()) == []
    assert not any(name.startswith("oidc_link_") for name, _ in scrape(server)[1])


def test_one_process_serves_its_apps_registry(
    app: Flask, registry: CollectorRegistry, servers: list[MetricsServer]
) -> None:
    app.test_client().get("/.well-known/openid-configuration")
    settings = metrics_settings(metrics={"enabled": True, "port": free_port()})

    server = serve_metrics(settings, registry)
    assert server is not None
    servers.append(server)

    assert server.address[0] == "127.0.0.1"
    labels = (("endpoint", "protocol.discovery"), ("method", "GET"), ("status", "200"))
    assert scrape(server)[1][("oidc_link_http_request_duration_seconds_count", labels)] == 1


def test_one_process_without_its_registry_is_refused(registry: CollectorRegistry) -> None:
    settings = metrics_settings(metrics={"enabled": True, "port": free_port()})

    with pytest.raises(ValueError, match="registry"):
        serve_metrics(settings)


def test_with_metrics_disabled_nothing_listens(registry: CollectorRegistry) -> None:
    port = free_port()
    settings = metrics_settings(metrics={"enabled": False, "port": port})

    assert serve_metrics(settings, registry) is None
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass


def test_a_shared_directory_set_after_start_up_is_refused() -> None:
    # This test process imported prometheus-client without PROMETHEUS_MULTIPROC_DIR.
    settings = metrics_settings({"PROMETHEUS_MULTIPROC_DIR": "/tmp/oidc-link-metrics"})

    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics.for_settings(settings)


# --- Settings. ---


def test_metrics_are_off_by_default_and_private_when_on() -> None:
    assert metrics_settings().metrics.enabled is False

    on = metrics_settings(metrics={"enabled": True}).metrics

    assert (on.enabled, on.host, on.port, on.multiprocess_dir) == (True, "127.0.0.1", 9464, None)


def test_the_environment_overrides_the_metrics_table() -> None:
    environ = {
        "OIDC_LINK_METRICS_ENABLED": "true",
        "OIDC_LINK_METRICS_HOST": "0.0.0.0",  # noqa: S104 - a container's scrape address
        "OIDC_LINK_METRICS_PORT": "9100",
        "PROMETHEUS_MULTIPROC_DIR": "/run/oidc-link/metrics",
    }

    metrics = metrics_settings(environ, metrics={"enabled": False, "port": 9464}).metrics

    assert metrics.enabled is True
    assert (metrics.host, metrics.port) == ("0.0.0.0", 9100)  # noqa: S104
    assert metrics.multiprocess_dir == "/run/oidc-link/metrics"


def test_bad_metrics_settings_are_all_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        metrics_settings(
            {"OIDC_LINK_METRICS_PORT": "nine"},
            metrics={"enabled": "yes", "port": 70000, "path": "/metrics"},
        )

    fields = {problem.field for problem in raised.value.problems}
    assert {"metrics.enabled", "metrics.path", "OIDC_LINK_METRICS_PORT"} <= fields


def test_a_port_outside_the_range_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.port: must be a port number"):
        metrics_settings(metrics={"enabled": True, "port": 70000})
