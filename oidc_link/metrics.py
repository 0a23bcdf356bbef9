"""Prometheus metrics: every metric name and label, the functions that record what happened,
and the private endpoint that serves them.

Label values come from fixed sets or the configured clients, so no request can create a new
series; nothing recorded here names a person, a code or a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import start_http_server

from oidc_link.config.webhooks import WEBHOOK_EVENT_TYPES

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from oidc_link.config import Settings

# What any label value outside its fixed set is recorded as.
OTHER = "other"

# Why a sign-in step did not move forward (interaction.Problem's values), or why a flow
# ended without a signed-in user.
SIGN_IN_FAILURE_REASONS = frozenset(
    {
        "invalid_email",
        "invalid_code_format",
        "wrong_code",
        "code_expired",
        "too_many_attempts",
        "resend_too_soon",
        "no_more_resends",
        "too_many_lookups",
        "too_many_sms",
        "link_rate_limited",
        "link_unavailable",
        "link_mismatch",
        "link_session_expired",
        "email_taken",
        "email_control_characters",
        "not_on_link",
        "cancelled",
        "consent_denied",
        "expired",
        "wrong_browser",
    }
)
# The limits of [limits] that requests run into, and the /v1 API's per-key rate.
RATE_LIMITS = frozenset(
    {
        "code_attempts",
        "resend_cooldown",
        "resends",
        "lookups_per_ip",
        "sms_per_email",
        "sms_per_email_ceiling",
        "client_daily_sms",
        "api_requests_per_second",
    }
)
LINK_OPERATIONS = frozenset({"lookup", "start_verification", "authenticate"})
# "ok", a link.LinkErrorKind value, or "error" for anything the client did not expect.
LINK_OUTCOMES = frozenset(
    {
        "ok",
        "not_found",
        "invalid_code",
        "code_expired",
        "too_many_attempts",
        "rate_limited",
        "unavailable",
        "bad_response",
        "error",
    }
)
GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
# Why Redis could not serve a request (errors.StoreUnavailableError's causes).
STORE_UNAVAILABLE_CAUSES = frozenset(
    {"unreachable", "out_of_memory", "read_only", "misconf", "no_replica"}
)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A request no route matched (404, or 405 for an unknown method).
UNMATCHED_ENDPOINT = "unmatched"
# How one outbox delivery attempt ended (webhooks/deliveries.py, backchannel.py): the sum is
# the attempts made; "gone" is a webhook endpoint answering 410 (it is then disabled).
DELIVERY_OUTCOMES = frozenset({"delivered", "retry", "gave_up", "gone"})
# The outbox's kinds of entry (outbox/handling.py): as written, and as delivered once fanned
# out (one per webhook endpoint, one per client to tell); and where its entries wait.
OUTBOX_KINDS = frozenset(
    {"event", "webhook_delivery", "backchannel_logout", "backchannel_logout_notice"}
)
OUTBOX_STATES = ("waiting", "in_flight", "retrying")
# Link calls go over the internet and may retry: their buckets reach the longest timeout.
LINK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


class _Children(dict[tuple[object, ...], Any]):
    """A metric's children by their label values (``children[values]`` or
    ``children(*values)``), each bound by ``labels()`` once, not on every observation.
    Keys are label values already bounded (an HTTP status is one of the few the app
    answers with), so the dict stays as small as the metric's series."""

    def __init__(self, metric: Counter | Histogram) -> None:
        super().__init__()
        self._metric = metric

    def __missing__(self, values: tuple[object, ...]) -> Any:
        # Two threads may both get here: labels() hands both the same child.
        child = self[values] = self._metric.labels(*values)
        return child

    def __call__(self, *values: object) -> Any:
        return self[values]


class Metrics:
    """The provider's metrics on one registry; build one per app (tests: one per test).

    In multi-process mode (``PROMETHEUS_MULTIPROC_DIR``) prometheus-client writes every
    value to that directory as well, where ``serve_metrics`` adds up all the processes.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        client_ids: Iterable[str] = (),
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry
        # A monotonic clock in seconds for durations (the injected Clock counts whole
        # seconds of wall time); tests pass one they move.
        self.timer = timer
        self._clients = frozenset(client_ids)
        self._started = Counter(
            "oidc_link_sign_ins_started",
            "Sign-ins that reached the hosted email page.",
            ["client_id"],
            registry=registry,
        )
        self._completed = Counter(
            "oidc_link_sign_ins_completed",
            "Sign-ins whose SMS code Link confirmed.",
            ["client_id"],
            registry=registry,
        )
        self._failed = Counter(
            "oidc_link_sign_ins_failed",
            "Sign-in steps that failed, by reason; a flow may fail more than once.",
            ["client_id", "reason"],
            registry=registry,
        )
        self._sms = Counter(
            "oidc_link_sms_sent",
            "Codes Link was asked to text, and accepted.",
            ["client_id"],
            registry=registry,
        )
        self._link = Histogram(
            "oidc_link_link_request_duration_seconds",
            "Calls to the Link network, by operation and outcome.",
            ["operation", "outcome"],
            buckets=LINK_BUCKETS,
            registry=registry,
        )
        self._tokens = Counter(
            "oidc_link_tokens_issued",
            "Token responses issued by the token endpoint, by grant type.",
            ["grant_type", "client_id"],
            registry=registry,
        )
        self._http = Histogram(
            "oidc_link_http_request_duration_seconds",
            "HTTP requests, by Flask endpoint name (not the path), method and status.",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self._limited = Counter(
            "oidc_link_rate_limited",
            "Requests refused because a limit was reached, by limit.",
            ["limit"],
            registry=registry,
        )

        self._clock_skew = Gauge(
            "oidc_link_clock_skew_seconds",
            "This instance's clock minus Redis's TIME, in whole seconds, when last measured.",
            registry=registry,
            # Several workers (and instances' scrapes) measure the same clock: the latest.
            multiprocess_mode="mostrecent",
        )
        self._store_unavailable = Counter(
            "oidc_link_store_unavailable",
            "Requests answered 503 because Redis was unreachable or refused writes, by cause.",
            ["cause"],
            registry=registry,
        )
        self._webhook_deliveries = Counter(
            "oidc_link_webhook_deliveries",
            "Webhook delivery attempts, by event type, client and outcome "
            "(delivered, retry, gave_up, gone); their sum is the attempts made.",
            ["event_type", "client_id", "outcome"],
            registry=registry,
        )
        self._backchannel_notices = Counter(
            "oidc_link_backchannel_logout_notices",
            "Back-channel logout delivery attempts, by client and outcome "
            "(delivered, retry, gave_up).",
            ["client_id", "outcome"],
            registry=registry,
        )
        self._outbox_lag = Gauge(
            "oidc_link_outbox_lag_seconds",
            "Age of the oldest outbox entry not yet delivered, in whole seconds: not yet "
            "handed on by the relay, waiting in the delivery stream, or a retry overdue.",
            registry=registry,
            # Every worker measures the same Redis: the latest reading.
            multiprocess_mode="mostrecent",
        )
        self._outbox_entries = Gauge(
            "oidc_link_outbox_entries",
            "Outbox entries on their way out, by state: waiting to be read, in_flight with "
            "a consumer, retrying later.",
            ["state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._outbox_given_up = Counter(
            "oidc_link_outbox_given_up",
            "Outbox entries given up undelivered (refused, or retried for max_age), by kind.",
            ["kind"],
            registry=registry,
        )
        self._started_by = _Children(self._started)
        self._completed_by = _Children(self._completed)
        self._failed_by = _Children(self._failed)
        self._sms_by = _Children(self._sms)
        self._link_by = _Children(self._link)
        self._tokens_by = _Children(self._tokens)
        self._http_by = _Children(self._http)
        self._limited_by = _Children(self._limited)
        self._store_unavailable_by = _Children(self._store_unavailable)
        self._webhook_deliveries_by = _Children(self._webhook_deliveries)
        self._backchannel_notices_by = _Children(self._backchannel_notices)

    @classmethod
    def for_settings(cls, settings: Settings, registry: CollectorRegistry | None = None) -> Metrics:
        """Metrics for the configured clients, on ``registry`` or a fresh one of their own."""
        shared = settings.metrics.multiprocess_dir
        if shared and not is_multiprocess():
            # prometheus-client picks its mode when first imported: set too late, each
            # worker would count alone and the scrape would show none of it.
            raise RuntimeError(
                f"PROMETHEUS_MULTIPROC_DIR ({shared}) was set after prometheus_client was "
                "imported: set it in the environment before oidc-link starts"
            )
        return cls(registry or CollectorRegistry(), [c.client_id for c in settings.clients])

    @classmethod
    def standalone(cls) -> Metrics:
        """Metrics on a registry of their own, knowing no clients: for parts assembled by
        hand (tests); build_services gives the app ``for_settings``."""
        return cls(CollectorRegistry())

    # The bounded label values of the methods below are told inline rather than through
    # _bounded: one set lookup each, on every request and sign-in step.

    def _client(self, client_id: str | None) -> str:
        value = client_id or ""
        return value if value in self._clients else OTHER

    # Label values are given in the order each metric declares its label names; the
    # recorders of each sign-in step find their child by subscription (no call of ours).

    def sign_in_started(self, client_id: str) -> None:
        self._started_by[(self._client(client_id),)].inc()

    def sign_in_completed(self, client_id: str) -> None:
        self._completed_by[(self._client(client_id),)].inc()

    def sign_in_failed(self, client_id: str | None, reason: str) -> None:
        self._failed_by(self._client(client_id), _bounded(reason, SIGN_IN_FAILURE_REASONS)).inc()

    def sms_sent(self, client_id: str) -> None:
        self._sms_by[(self._client(client_id),)].inc()

    def link_call(self, operation: str, outcome: str, seconds: float) -> None:
        self._link_by[
            operation if operation in LINK_OPERATIONS else OTHER,
            outcome if outcome in LINK_OUTCOMES else OTHER,
        ].observe(seconds)

    def token_issued(self, grant_type: str, client_id: str) -> None:
        grant = grant_type if grant_type in GRANT_TYPES else OTHER
        self._tokens_by[grant, self._client(client_id)].inc()

    def http_request(self, endpoint: str | None, method: str, status: int, seconds: float) -> None:
        """``endpoint`` is the Flask endpoint name (one per route, whatever its path holds)."""
        self._http_by[
            endpoint or UNMATCHED_ENDPOINT, method if method in HTTP_METHODS else OTHER, status
        ].observe(seconds)

    def rate_limited(self, limit: str) -> None:
        self._limited_by(_bounded(limit, RATE_LIMITS)).inc()

    def clock_skew(self, seconds: int) -> None:
        self._clock_skew.set(seconds)

    def store_unavailable(self, cause: str) -> None:
        self._store_unavailable_by(_bounded(cause, STORE_UNAVAILABLE_CAUSES)).inc()

    def webhook_delivery(self, event_type: str, client_id: str, outcome: str) -> None:
        self._webhook_deliveries_by(
            _bounded(event_type, WEBHOOK_EVENT_TYPES),
            self._client(client_id),
            _bounded(outcome, DELIVERY_OUTCOMES),
        ).inc()

    def backchannel_notice(self, client_id: str, outcome: str) -> None:
        self._backchannel_notices_by(
            self._client(client_id), _bounded(outcome, DELIVERY_OUTCOMES)
        ).inc()

    def outbox_backlog(self, lag_seconds: int, entries: dict[str, int]) -> None:
        """The outbox's lag and its entries by state (OUTBOX_STATES), as last measured."""
        self._outbox_lag.set(lag_seconds)
        for state in OUTBOX_STATES:
            self._outbox_entries.labels(state).set(entries.get(state, 0))

    def outbox_given_up(self, kind: str) -> None:
        self._outbox_given_up.labels(_bounded(kind, OUTBOX_KINDS)).inc()


def is_multiprocess() -> bool:
    """Whether prometheus-client records into ``PROMETHEUS_MULTIPROC_DIR`` in this process."""
    return values.ValueClass is not values.MutexValue


@dataclass(frozen=True)
class MetricsServer:
    """The running scrape endpoint (a daemon thread); ``close`` stops it."""

    server: WSGIServer
    thread: Thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def serve_metrics(
    settings: Settings, registry: CollectorRegistry | None = None
) -> MetricsServer | None:
    """Serve ``/metrics`` in the Prometheus text format on ``[metrics] host:port``; nothing
    when metrics are disabled.

    With ``PROMETHEUS_MULTIPROC_DIR`` the values of every worker process are added up from
    that directory (call this in the server's main process, before the workers start).
    Without it, one process serves its own ``registry``: the app's,
    ``services.metrics.registry``.
    """
    config = settings.metrics
    if not config.enabled:
        return None
    if config.multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=config.multiprocess_dir)
    elif registry is None:
        raise ValueError(
            "Without PROMETHEUS_MULTIPROC_DIR, serve_metrics needs the app's registry "
            "(services.metrics.registry)"
        )
    server, thread = start_http_server(config.port, config.host, registry)
    return MetricsServer(server, thread)


def wipe_shared_values(settings: Settings) -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` before the workers start: prometheus-client asks
    for a clean directory per run, or the last run's counts would be added to this one's."""
    shared = settings.metrics.multiprocess_dir
    if shared:
        for values_file in Path(shared).glob("*.db"):
            values_file.unlink(missing_ok=True)
