"""web/fixed_limits.py hands the server an answer's body as the list of bytes it is, where
Werkzeug's ClosingIterator would give the same bytes and have nothing to close; an answer
with something to close (a callback, a stream, str parts) goes out through Werkzeug's."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from werkzeug.wrappers import Response as WerkzeugResponse

from oidc_link.web.fixed_limits import response_class_for


def environ_for(method: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9999"}


@pytest.fixture
def response_class() -> type[WerkzeugResponse]:
    return response_class_for(Flask(__name__).config)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("body", ["<p>hello</p>", b"\x00\xff", "", "caf\u00e9"])
def test_a_body_set_at_once_goes_out_as_its_list(
    response_class: type[WerkzeugResponse], method: str, body: str | bytes
) -> None:
    environ = environ_for(method)
    ours, status, headers = response_class(body).get_wsgi_response(environ)
    theirs, their_status, their_headers = WerkzeugResponse.get_wsgi_response(
        response_class(body), environ
    )

    assert type(ours) is list
    assert (list(ours), status, headers) == (list(theirs), their_status, their_headers)


def test_an_answer_with_a_close_callback_still_has_it_called(
    response_class: type[WerkzeugResponse],
) -> None:
    closed: list[str] = []
    answer = response_class("body")
    answer.call_on_close(lambda: closed.append("closed"))

    body, _, _ = answer.get_wsgi_response(environ_for("GET"))
    assert b"".join(body) == b"body"
    body.close()  # type: ignore[attr-defined]  # as the server does

    assert closed == ["closed"]


@pytest.mark.parametrize(
    "parts", [["a", b"b"], iter([b"a", b"b"]), (b"a", b"b")], ids=["str", "iterator", "tuple"]
)
def test_other_bodies_go_out_through_werkzeug(
    response_class: type[WerkzeugResponse], parts: Any
) -> None:
    answer = response_class(parts)

    body, _, _ = answer.get_wsgi_response(environ_for("GET"))

    assert type(body) is not list
    assert b"".join(body) == b"ab"
