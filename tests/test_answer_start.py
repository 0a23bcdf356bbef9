"""web/answer_start.py sets an answer's status, headers and body in one step for the shapes
our views give; the answer is the one Werkzeug's ``Response.__init__`` makes, field by
field, on every shape (and anything else still goes to Werkzeug)."""

from __future__ import annotations

import itertools
import random
from http import HTTPStatus
from typing import Any

import pytest
from flask import Flask, Response
from werkzeug.datastructures import Headers

from oidc_link.web.answer_start import answer_fields
from oidc_link.web.fixed_limits import response_class_for
from oidc_link.web.plain_flask import PlainFlask

BODIES: list[Any] = [
    "",
    "ok",
    "caf\u00e9 \u2603",
    "<p>" * 500,
    b"bytes",
    bytearray(b"x"),
    None,
    [b"a", b"b"],
    iter([b"a"]),
]
STATUSES: list[Any] = [
    None,
    200,
    302,
    303,
    400,
    404,
    500,
    299,
    999,
    0,
    HTTPStatus.OK,
    "200 OK",
    "404",
    "201 Made",
    True,
]
HEADERS: list[Any] = [
    None,
    {},
    [],
    {"Location": "https://rp.example/cb?code=x"},
    {"X-One": "1", "X-Two": "two", "Cache-Control": "no-store"},
    {"Content-Type": "application/json"},
    {"content-length": "3"},
    {"CONTENT-TYPE": "text/plain"},
    {"X-Bad": "a\nb"},
    {"X-Bad": "a\rb"},
    {"X-Int": 5},
    {"X-List": ["a", "b"]},
    {5: "x"},
    [("X-One", "1")],
    Headers([("X-One", "1")]),
]
TYPES: list[tuple[Any, Any]] = [
    (None, None),
    ("text/html", None),
    ("application/json", None),
    ("image/png", None),
    ("application/xml+xml", None),
    (None, "text/html; charset=utf-8"),
    ("text/plain", "application/json"),
    (None, "a\nb"),
    (None, ""),
]


@pytest.fixture(scope="module")
def ours() -> type[Response]:
    return response_class_for(Flask(__name__).config)


def _made(cls: type[Response], *args: Any, **kwargs: Any) -> Any:
    try:
        answer = cls(*args, **kwargs)
    except Exception as error:  # the same error is part of the answer
        return type(error), str(error)
    fields = {k: v for k, v in vars(answer).items() if k != "headers"}
    body = answer.response
    if isinstance(body, list):
        fields["response"] = list(body)
    else:
        fields["response"] = type(body)
    return type(answer.headers), answer.headers.to_wsgi_list(), fields


def test_every_shape_made_as_werkzeug_makes_it(ours: type[Response]) -> None:
    for body, status, headers, (mimetype, content_type), passthrough in itertools.product(
        BODIES, STATUSES, HEADERS, TYPES, (False, True)
    ):
        if isinstance(body, type(iter([]))):
            body = iter([b"a"])
        arguments = (body, status, headers, mimetype, content_type, passthrough)
        fresh = [dict(h) if isinstance(h, dict) else h for h in arguments]
        assert _made(ours, *arguments) == _made(Response, *fresh), arguments


def test_random_answers_made_as_werkzeug_makes_them(ours: type[Response]) -> None:
    rng = random.Random(16)  # noqa: S311 - test inputs, not secrets
    alphabet = "aZ09-_ \t:;,\"'<>\u00e9\u2603\r\n"
    for _ in range(3000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randrange(20)))
        headers = {
            "".join(rng.choice("aB-") for _ in range(rng.randrange(1, 5))): "".join(
                rng.choice(alphabet) for _ in range(rng.randrange(8))
            )
            for _ in range(rng.randrange(4))
        }
        status = rng.choice([None, 200, 302, 400, rng.randrange(1000)])
        content_type = rng.choice([None, "text/html; charset=utf-8", "x\r"])
        assert _made(ours, body, status, dict(headers), None, content_type) == _made(
            Response, body, status, dict(headers), None, content_type
        )


def test_a_class_without_automatic_content_length_goes_to_werkzeug(
    ours: type[Response],
) -> None:
    class NoLength(ours):  # type: ignore[valid-type,misc]
        automatically_set_content_length = False

    class TheirNoLength(Response):
        automatically_set_content_length = False

    assert _made(NoLength, "ok", 200) == _made(TheirNoLength, "ok", 200)
    assert "Content-Length" not in NoLength("ok").headers


def test_other_defaults_are_read_from_the_class(ours: type[Response]) -> None:
    class Json(ours):  # type: ignore[valid-type,misc]
        default_mimetype = "application/json"
        default_status = 201

    class TheirJson(Response):
        default_mimetype = "application/json"
        default_status = 201

    assert _made(Json, "{}") == _made(TheirJson, "{}")


def test_the_narrow_case_alone() -> None:
    line, code, headers, data = answer_fields(  # type: ignore[misc]
        "caf\u00e9", 303, {"Location": "/x"}, None, None, 200, "text/html"
    )
    assert (line, code, data) == ("303 SEE OTHER", 303, "caf\u00e9".encode())
    assert headers.to_wsgi_list() == [
        ("Location", "/x"),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "5"),
    ]
    assert answer_fields(b"x", None, None, None, None, 200, None) is None
    assert answer_fields("x", 299, None, None, None, 200, None) is None


VIEW_ANSWERS: list[Any] = [
    "ok",
    "",
    ("page", 201, {"X-A": "1"}),
    ("page", 404, None),
    ("page", "418 TEAPOT", {}),
    ("page", None, {"X-A": "1"}),
    ("page", 200, [("X-A", "1")]),
    ("page", 200),
    ("page", {"X-A": "1"}),
    (b"bytes", 200, {}),
    {"json": True},
    ["json"],
    ("page", 200, {"X-A": "a\nb"}),
    ("page", 200, {}, "extra"),
]


@pytest.mark.parametrize("answer", VIEW_ANSWERS, ids=repr)
def test_make_response_as_flask_makes_it(answer: Any) -> None:
    ours = PlainFlask(__name__)
    ours.response_class = response_class_for(ours.config)
    theirs = Flask(__name__)
    theirs.response_class = ours.response_class

    def made(app: Flask) -> Any:
        with app.test_request_context("/"):
            copy = (
                tuple(dict(a) if isinstance(a, dict) else a for a in answer)
                if isinstance(answer, tuple)
                else answer
            )
            try:
                response = app.make_response(copy)
            except Exception as error:
                return type(error), str(error)
            return response.status, response.headers.to_wsgi_list(), response.get_data()

    assert made(ours) == made(theirs)
