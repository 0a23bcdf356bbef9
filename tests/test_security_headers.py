"""The headers every answer gets (web/headers.py): each default once, and never over a header
the view chose itself."""

from __future__ import annotations

from flask import Flask
from werkzeug.datastructures import Headers

from oidc_link.web.headers import CONTENT_SECURITY_POLICY, add_security_headers
from tests.conftest import ISSUER

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

    add_security_headers(headers, "req_abc", page=True, cacheable=False)

    assert headers["Content-Security-Policy"] == "default-src 'none'; script-src 'self'"
    assert headers["Cache-Control"] == "private"
    assert headers.getlist("Request-Id") == ["req_abc"]
    assert headers["X-Frame-Options"] == "DENY"
    assert all(count == 1 for count in counts(headers).values())
