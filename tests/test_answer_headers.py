"""web/headers.py's add_answer_headers gives what add_security_headers gives with ``page``
read from ``Response.mimetype``, as the after-request hook did, for many answers' headers."""

from __future__ import annotations

import itertools

import pytest
from flask import Response
from werkzeug.datastructures import Headers

from oidc_link.web.headers import add_answer_headers, add_security_headers

CONTENT_TYPES = (
    None,
    "text/html; charset=utf-8",
    "text/html",
    " text/html ;charset=utf-8",
    "TEXT/HTML",
    "text/htmlx",
    "application/json",
    "",
    "text/plain; text/html",
)
VIEW_HEADERS = (
    [],
    [("Cache-Control", "public, max-age=300")],
    [("content-security-policy", "default-src 'self'"), ("X-Frame-Options", "SAMEORIGIN")],
    [("Request-Id", "forged"), ("Location", "https://rp.example/cb?code=x")],
    [("Request-Id", "a"), ("request-id", "b"), ("Set-Cookie", "a=b")],
    [("Strict-Transport-Security", "max-age=1"), ("Referrer-Policy", "origin")],
    [("x-content-type-options", "nosniff"), ("Content-Type", "text/html")],
)


def answer_headers(content_type: str | None, view: list[tuple[str, str]]) -> Headers:
    headers = Headers([("Content-Type", content_type)] if content_type is not None else [])
    headers.extend(view)
    headers.add("Content-Length", "12")
    return headers


@pytest.mark.parametrize(
    ("content_type", "view", "cacheable", "https"),
    list(itertools.product(CONTENT_TYPES, VIEW_HEADERS, (False, True), (False, True))),
)
def test_the_same_headers_as_the_hook_made(
    content_type: str | None, view: list[tuple[str, str]], cacheable: bool, https: bool
) -> None:
    ours = answer_headers(content_type, view)
    theirs = answer_headers(content_type, view)
    answer = Response()
    answer.headers = theirs.copy()
    page = answer.mimetype == "text/html"  # what the hook read

    add_answer_headers(ours, "req_abc", cacheable=cacheable, https=https)
    add_security_headers(theirs, "req_abc", page=page, cacheable=cacheable, https=https)

    assert list(ours) == list(theirs)


def test_a_request_id_with_a_line_break_is_refused_as_before() -> None:
    with pytest.raises(ValueError, match="newline"):
        add_answer_headers(Headers(), "req\nx", cacheable=False, https=False)
