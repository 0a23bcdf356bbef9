"""Discovery and the JWKS answered before Flask (web/fast_path.py): the same status,
headers and body as the Flask view gives, a fresh Request-Id, the same metric and the same
log line (none for a success unless log_probe_requests = "line"); everything else still
reaches Flask."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import pytest
import redis
from flask import Flask, request
from prometheus_client import CollectorRegistry
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder, run_wsgi_app

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.errors import StoreUnavailableError
from oidc_link.logs import configure_logging
from oidc_link.services import Services, build_services
from oidc_link.web.context import EXTENSION_NAME
from oidc_link.web.fast_path import FastPath
from oidc_link.web.public_documents import PublicDocuments
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, SHOP_SECRET, provider_config
from tests.test_key_rotation import LEAD, REFRESH, ROTATION, rotating_settings, services_for

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks.json"
DOCUMENTS = (DISCOVERY, JWKS)
HISTOGRAM = "oidc_link_http_request_duration_seconds_count"


class Answer:
    """A WSGI answer: status line, headers in order, body."""

    def __init__(self, app: Any, method: str, path: str, **options: Any) -> None:
        environ = EnvironBuilder(path=path, method=method, base_url=ISSUER, **options)
        body, self.status, headers = run_wsgi_app(app, environ.get_environ(), buffered=True)
        self.headers: Headers = headers
        self.body = b"".join(body)
        if hasattr(body, "close"):
            body.close()

    @property
    def request_id(self) -> str:
        return self.headers["Request-Id"]

    def without_request_id(self) -> tuple[str, list[tuple[str, str]], bytes]:
        headers = [
            (name, "(fresh)" if name == "Request-Id" else value) for name, value in self.headers
        ]
        return self.status, headers, self.body


def fast(app: Flask, method: str, path: str, **options: Any) -> Answer:
    """Through the whole WSGI stack, as a server calls the app."""
    return Answer(app.wsgi_app, method, path, **options)


def from_flask(app: Flask, method: str, path: str, **options: Any) -> Answer:
    """From the Flask app behind the layer, as before it existed."""
    return Answer(app.wsgi_app.app, method, path, **options)  # type: ignore[attr-defined]


def flask_paths(app: Flask) -> list[str]:
    """Each path Flask itself answers from now on (a before-request hook notes it)."""
    seen: list[str] = []

    @app.before_request
    def note_path() -> None:
        seen.append(request.method + " " + request.path)

    return seen


def log_output() -> io.StringIO:
    """The JSON log, as `oidc-link serve` writes it (conftest.py removes the handler after)."""
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    return stream


def request_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line.get("event") == "http.request"]


def app_with(
    probe_requests: str, redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Flask:
    """The test app with ``log_probe_requests`` set as an operator would in the file."""
    config = provider_config() | {"log_probe_requests": probe_requests}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


@pytest.fixture
def app_logging_probes(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Flask:
    """Every request writes its line, a successful document GET included (as before 16)."""
    return app_with("line", redis_client, live_clock, console)


def counted(app: Flask, endpoint: str, method: str, status: int) -> float:
    """Requests the app's HTTP histogram has seen with these labels."""
    registry = app.extensions[EXTENSION_NAME].services.metrics.registry
    labels = {"endpoint": endpoint, "method": method, "status": str(status)}
    return registry.get_sample_value(HISTOGRAM, labels) or 0.0


@pytest.mark.parametrize("path", DOCUMENTS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_plain_get_or_head_is_answered_before_flask_exactly_as_flask_answers_it(
    app: Flask, path: str, method: str
) -> None:
    seen = flask_paths(app)

    answer = fast(app, method, path)
    assert seen == []
    expected = from_flask(app, method, path)
    assert seen == [f"{method} {path}"]

    assert answer.status == "200 OK"
    assert answer.without_request_id() == expected.without_request_id()
    assert answer.headers["Content-Length"] == str(len(fast(app, "GET", path).body))
    assert (answer.body == b"") == (method == "HEAD")


def test_every_answer_carries_a_request_id_of_its_own(app: Flask) -> None:
    ids = [fast(app, "GET", path).request_id for path in DOCUMENTS * 3]

    assert len(set(ids)) == len(ids)
    assert all(request_id.startswith("req_") for request_id in ids)


@pytest.mark.parametrize("path", DOCUMENTS)
def test_a_query_string_is_ignored_as_flask_ignores_it(app: Flask, path: str) -> None:
    seen = flask_paths(app)

    answer = fast(app, "GET", path, query_string={"v": "2", "client_id": "shop"})

    assert seen == []
    assert answer.without_request_id() == from_flask(app, "GET", path).without_request_id()


def test_a_conditional_request_goes_to_flask_and_gets_304_for_the_current_etag(
    app: Flask,
) -> None:
    seen = flask_paths(app)
    etag = fast(app, "GET", JWKS).headers["ETag"]

    unchanged = fast(app, "GET", JWKS, headers={"If-None-Match": etag})
    changed = fast(app, "GET", JWKS, headers={"If-None-Match": '"something-else"'})

    assert unchanged.status == "304 NOT MODIFIED" and unchanged.body == b""
    assert unchanged.headers["ETag"] == etag
    assert changed.status == "200 OK"
    assert seen == [f"GET {JWKS}", f"GET {JWKS}"]


@pytest.mark.parametrize("path", DOCUMENTS)
def test_another_method_still_gets_flasks_405_with_a_json_error(app: Flask, path: str) -> None:
    seen = flask_paths(app)

    answer = fast(app, "POST", path)

    assert answer.status == "405 METHOD NOT ALLOWED"
    assert json.loads(answer.body)["error"] == "invalid_request"
    assert seen == [f"POST {path}"]


def test_a_request_with_credentials_or_a_body_type_goes_to_flask(app: Flask) -> None:
    seen = flask_paths(app)

    with_credentials = fast(app, "GET", JWKS, headers={"Authorization": "Basic c2hvcDp4"})
    with_body_type = fast(app, "GET", DISCOVERY, data="{}", content_type="application/json")

    assert with_credentials.status == with_body_type.status == "200 OK"
    assert seen == [f"GET {JWKS}", f"GET {DISCOVERY}"]


def test_other_paths_and_near_misses_go_to_flask(app: Flask) -> None:
    seen = flask_paths(app)

    for path in ("/jwks.json/", "/JWKS.json", "/.well-known/openid-configuration/x", "/healthz"):
        fast(app, "GET", path)

    assert len(seen) == 4


@pytest.fixture
def rotating_services(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Services:
    return services_for(rotating_settings("ES256", "EdDSA"), redis_client, live_clock, console)


def published(app: Flask) -> tuple[dict[str, Any], list[str]]:
    """Discovery and the JWKS kids as answered before Flask, checked against Flask's."""
    discovery, jwks = fast(app, "GET", DISCOVERY), fast(app, "GET", JWKS)
    for answer, path in ((discovery, DISCOVERY), (jwks, JWKS)):
        assert answer.without_request_id() == from_flask(app, "GET", path).without_request_id()
    return json.loads(discovery.body), [key["kid"] for key in json.loads(jwks.body)["keys"]]


def test_after_a_rotation_the_jwks_shows_the_new_keys_under_a_new_etag(
    rotating_services: Services, live_clock: FixedClock
) -> None:
    app = create_app(rotating_services.settings, rotating_services)
    _, kids = published(app)
    etag = fast(app, "GET", JWKS).headers["ETag"]

    live_clock.advance(ROTATION - LEAD)  # the schedule's next keys are published
    _, rotated = published(app)

    assert len(kids) == 3 and len(rotated) == 6
    assert set(kids) < set(rotated)
    assert fast(app, "GET", JWKS).headers["ETag"] != etag


def test_discovery_shows_an_algorithm_once_its_key_signs(
    rotating_services: Services, live_clock: FixedClock
) -> None:
    app = create_app(rotating_services.settings, rotating_services)
    keys, store = rotating_services.keys, rotating_services.store
    discovery, _ = published(app)
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
    scheduled = keys.rotate("ES256")
    assert scheduled is not None
    for key in store.keyring.load("ES256"):
        if key.kid != scheduled.kid:
            store.keyring.remove(key)  # an ES256 ring whose only key signs later

    live_clock.advance(REFRESH)
    discovery, kids = published(app)
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "EdDSA"]
    assert scheduled.kid in kids

    live_clock.advance(scheduled.signs_from - live_clock.now())
    discovery, _ = published(app)
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]


def test_with_probe_lines_each_answer_writes_the_request_line_flask_would_write(
    app_logging_probes: Flask,
) -> None:
    app = app_logging_probes
    stream = log_output()

    answers = [
        fast(app, "GET", DISCOVERY),
        fast(app, "HEAD", JWKS),
        fast(app, "GET", JWKS, query_string={"client_id": "shop"}),
        fast(app, "GET", JWKS, query_string={"client_id": "jenny@example.com"}),
    ]
    ours = request_lines(stream)
    stream.truncate(0)
    stream.seek(0)
    from_flask(app, "GET", DISCOVERY)
    from_flask(app, "HEAD", JWKS)
    from_flask(app, "GET", JWKS, query_string={"client_id": "shop"})
    from_flask(app, "GET", JWKS, query_string={"client_id": "jenny@example.com"})
    flasks = request_lines(stream)

    assert [line["request_id"] for line in ours] == [answer.request_id for answer in answers]
    assert [line["client_id"] for line in ours] == [None, None, "shop", None]
    for mine, theirs in zip(ours, flasks, strict=True):
        assert list(mine) == list(theirs)
        different = {"time", "request_id", "duration_ms", "message"}
        assert {k: v for k, v in mine.items() if k not in different} == {
            k: v for k, v in theirs.items() if k not in different
        }
        assert mine["message"].rsplit(" in ", 1)[0] == theirs["message"].rsplit(" in ", 1)[0]
        assert (
            mine["message"] == f"{mine['method']} {mine['route']} 200 in {mine['duration_ms']} ms"
        )
        assert isinstance(mine["duration_ms"], float)
    assert [(line["method"], line["route"]) for line in ours] == [
        ("GET", DISCOVERY),
        ("HEAD", JWKS),
        ("GET", JWKS),
        ("GET", JWKS),
    ]
    assert "jenny" not in stream.getvalue()


def test_each_answer_is_counted_in_the_http_histogram_under_flasks_endpoint_name(
    settings: Settings, live_clock: FixedClock, console: list[str], embedded_redis: redis.Redis
) -> None:
    registry = CollectorRegistry()
    services = build_services(
        settings,
        clock=live_clock,
        redis_client=embedded_redis,
        announce=console.append,
        metrics_registry=registry,
    )
    app = create_app(settings, services)

    for _ in range(3):
        fast(app, "GET", DISCOVERY)
    fast(app, "GET", JWKS)
    fast(app, "HEAD", JWKS)
    from_flask(app, "GET", JWKS)

    def count(endpoint: str, method: str) -> float:
        labels = {"endpoint": endpoint, "method": method, "status": "200"}
        return registry.get_sample_value(HISTOGRAM, labels) or 0.0

    assert count("protocol.discovery", "GET") == 3
    assert count("protocol.jwks", "GET") == 2  # one of them answered by Flask
    assert count("protocol.jwks", "HEAD") == 1


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_by_default_a_document_answered_here_or_by_flask_writes_no_line_but_is_counted(
    app: Flask, method: str
) -> None:
    stream = log_output()

    for path in DOCUMENTS:
        assert fast(app, method, path).status == "200 OK"
        assert from_flask(app, method, path).status == "200 OK"
    etag = fast(app, method, JWKS).headers["ETag"]
    unchanged = fast(app, method, JWKS, headers={"If-None-Match": etag})  # Flask answers

    assert unchanged.status == "304 NOT MODIFIED"
    assert request_lines(stream) == []
    assert counted(app, "protocol.discovery", method, 200) == 2
    assert counted(app, "protocol.jwks", method, 200) == 3
    assert counted(app, "protocol.jwks", method, 304) == 1


@pytest.mark.parametrize("probe_requests", ["counter", "line"])
def test_an_error_on_a_document_path_is_logged_and_counted_whatever_the_setting(
    probe_requests: str, redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> None:
    app = app_with(probe_requests, redis_client, live_clock, console)
    stream = log_output()

    errors = [
        fast(app, "POST", DISCOVERY),
        fast(app, "DELETE", JWKS),
        fast(app, "GET", DISCOVERY + "/x"),
    ]
    success = fast(app, "GET", JWKS)

    assert [answer.status[:3] for answer in errors] == ["405", "405", "404"]
    lines = request_lines(stream)
    assert [(line["method"], line["status"], line["request_id"]) for line in lines[:3]] == [
        ("POST", 405, errors[0].request_id),
        ("DELETE", 405, errors[1].request_id),
        ("GET", 404, errors[2].request_id),
    ]
    written = [line["request_id"] for line in lines[3:]]
    assert written == ([success.request_id] if probe_requests == "line" else [])
    assert counted(app, "unmatched", "POST", 405) == 1
    assert counted(app, "unmatched", "DELETE", 405) == 1
    assert counted(app, "unmatched", "GET", 404) == 1
    assert counted(app, "protocol.jwks", "GET", 200) == 1


class UnloadableKeys:
    """Signing keys that cannot be read: Redis unreachable and nothing in memory yet."""

    def signing_algorithms(self) -> list[str]:
        raise StoreUnavailableError("Redis is unreachable")

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        raise StoreUnavailableError("Redis is unreachable")


def test_when_the_document_cannot_be_built_the_app_behind_answers_instead(app: Flask) -> None:
    behind: list[str] = []

    def app_behind(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        behind.append(environ["PATH_INFO"])
        start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json")])
        return [b'{"error": "temporarily_unavailable"}']

    services = app.extensions[EXTENSION_NAME].services
    documents = PublicDocuments(services.settings, UnloadableKeys(), json.dumps)  # type: ignore[arg-type]
    layer = FastPath(app_behind, documents, app.url_map, services.settings, services.metrics)

    answers = [Answer(layer, "GET", path) for path in DOCUMENTS]

    assert [answer.status for answer in answers] == ["503 SERVICE UNAVAILABLE"] * 2
    assert behind == list(DOCUMENTS)


def test_the_layer_is_the_outermost_even_behind_trusted_proxies(
    live_clock: FixedClock, console: list[str], embedded_redis: redis.Redis
) -> None:
    config = provider_config() | {"proxy_hops": 1}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=embedded_redis, announce=console.append
    )
    app = create_app(settings, services)

    assert isinstance(app.wsgi_app, FastPath)
    assert type(app.wsgi_app.app).__name__ == "ProxyFix"
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    answer = fast(app, "GET", DISCOVERY, headers=forwarded)
    assert answer.without_request_id() == from_flask(app, "GET", DISCOVERY).without_request_id()
