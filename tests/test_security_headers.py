"""The headers every answer gets (web/headers.py): each default once, and never over a header
the view chose itself."""

from __future__ import annotations

import pytest
import redis
from flask import Flask
from werkzeug.datastructures import Headers

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from oidc_link.web.headers import CONTENT_SECURITY_POLICY, add_security_headers
from tests.conftest import ISSUER, SHOP_SECRET, provider_config

LOOPBACK_ISSUER = "http://127.0.0.1:8000"
# Every kind of answer: a page, protocol JSON, discovery and the JWKS (answered before Flask,
# web/fast_path.py), a static file.
EVERY_KIND = (
    "/signin/flow_unknown",
    "/userinfo",
    "/.well-known/openid-configuration",
    "/jwks.json",
    "/static/site.css",
)

DEFAULTS = ("X-Content-Type-Options", "Referrer-Policy", "Cache-Control")
PAGE_ONLY = ("Content-Security-Policy", "X-Frame-Options")


def counts(headers: Headers) -> dict[str, int]:
    seen: dict[str, int] = {}
    for name, _ in headers.items():
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
    return seen


def test_a_page_gets_every_security_header_exactly_once(app: Flask) -> None:
    page = app.test_client().get("/signin/flow_unknown", base_url=ISSUER)

    assert page.mimetype == "text/html"
    seen = counts(page.headers)
    for name in (*DEFAULTS, *PAGE_ONLY, "Request-Id"):
        assert seen.get(name.lower()) == 1, name
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Request-Id"].startswith("req_")


def test_a_json_answer_gets_the_defaults_but_no_page_policy(app: Flask) -> None:
    answer = app.test_client().post("/token", data={"grant_type": "x"}, base_url=ISSUER)

    assert answer.mimetype == "application/json"
    seen = counts(answer.headers)
    assert all(seen.get(name.lower()) == 1 for name in DEFAULTS)
    assert not any(name.lower() in seen for name in PAGE_ONLY)
    assert answer.headers["Cache-Control"] == "no-store"


def test_the_public_documents_keep_their_own_cache_header(app: Flask) -> None:
    client = app.test_client()
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        answer = client.get(path, base_url=ISSUER)

        assert counts(answer.headers)["cache-control"] == 1
        assert answer.headers["Cache-Control"].startswith("public, max-age=")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_static_files_may_be_cached(app: Flask) -> None:
    answer = app.test_client().get("/static/site.css", base_url=ISSUER)

    assert answer.status_code == 200
    assert answer.headers.get("Cache-Control") != "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    answer.close()


def test_headers_a_view_set_are_kept_and_request_id_is_replaced() -> None:
    headers = Headers(
        [
            ("Content-Security-Policy", "default-src 'none'; script-src 'self'"),
            ("cache-control", "private"),
            ("Request-Id", "forged"),
        ]
    )

    add_security_headers(headers, "req_abc", page=True, cacheable=False, https=False)

    assert headers["Content-Security-Policy"] == "default-src 'none'; script-src 'self'"
    assert headers["Cache-Control"] == "private"
    assert headers.getlist("Request-Id") == ["req_abc"]
    assert headers["X-Frame-Options"] == "DENY"
    assert all(count == 1 for count in counts(headers).values())


@pytest.mark.parametrize("page", [False, True])
@pytest.mark.parametrize("cacheable", [False, True])
@pytest.mark.parametrize("https", [False, True])
def test_the_defaults_follow_the_views_headers_in_one_order_and_a_request_id_keeps_its_place(
    page: bool, cacheable: bool, https: bool
) -> None:
    headers = Headers([("Content-Type", "text/html"), ("Request-Id", "forged"), ("X-A", "1")])

    add_security_headers(headers, "req_abc", page=page, cacheable=cacheable, https=https)

    expected = [("Content-Type", "text/html"), ("Request-Id", "req_abc"), ("X-A", "1")]
    expected += [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")]
    if page:
        expected += [
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ("X-Frame-Options", "DENY"),
        ]
    if not cacheable:
        expected.append(("Cache-Control", "no-store"))
    if https:
        expected.append(("Strict-Transport-Security", "max-age=63072000"))
    assert list(headers) == expected


# --- Strict-Transport-Security: with an https issuer only. ---


@pytest.fixture
def loopback_app(embedded_redis: redis.Redis, live_clock: FixedClock) -> Flask:
    """The development setup: the issuer is plain http on loopback."""
    config = {**provider_config(), "issuer": LOOPBACK_ISSUER}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    return create_app(
        settings, build_services(settings, clock=live_clock, redis_client=embedded_redis)
    )


def test_every_answer_of_an_https_issuer_asks_browsers_to_keep_to_https(app: Flask) -> None:
    client = app.test_client()
    for path in EVERY_KIND:
        answer = client.get(path, base_url=ISSUER)

        assert answer.headers.getlist("Strict-Transport-Security") == ["max-age=63072000"], path
        answer.close()


def test_a_plain_http_issuer_on_loopback_sends_no_strict_transport_security(
    loopback_app: Flask,
) -> None:
    client = loopback_app.test_client()
    for path in EVERY_KIND:
        answer = client.get(path, base_url=LOOPBACK_ISSUER)

        assert answer.status_code in (200, 401, 404), path
        assert "Strict-Transport-Security" not in answer.headers, path
        answer.close()
