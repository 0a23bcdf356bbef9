"""web/fixed_limits.py's request and response classes give what Flask's and Werkzeug's
give: a urlencoded form parsed in one pass holds the same fields, meets the same limits
and errors, and an answer's headers go out the same, fixed up where Werkzeug fixes them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask import Request as FlaskRequest
from flask import Response as FlaskResponse
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wrappers import Response as WerkzeugResponse

from tests.conftest import ISSUER

URLENCODED = "application/x-www-form-urlencoded"
BODIES = (
    b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fshop.example.test%2Fcb",
    b"a=1&a=2&b=",
    b"a&&b=2&",
    b"name=Ada+Lovelace&note=caf%C3%A9",
    b"bad=%ff%fe",  # not UTF-8 once unquoted: Werkzeug keeps the escapes
    b"\xff\xfe=1",  # not UTF-8 as sent: Werkzeug's silent parser gives an empty form
    b"",
    b"=&=x",
)
CONTENT_TYPES = (URLENCODED, URLENCODED + "; charset=utf-8", "text/plain")


def environ_for(body: bytes, content_type: str, *, terminated: bool = False) -> dict[str, Any]:
    """A POST's environ as a server gives it: with its Content-Length, or (granian)
    ``wsgi.input_terminated`` and the length left to the stream's end."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9999",
        "PATH_INFO": "/token",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": content_type,
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def parsed(request: Any) -> tuple[Any, ...]:
    """What a view can see of a parsed body: the form's fields in order, the files, and
    what the stream still holds."""
    form = list(request.form.items(multi=True))
    return form, list(request.files.items(multi=True)), request.stream.read()


@pytest.fixture
def in_app(app: Flask) -> Iterator[Flask]:
    """Flask's own Request reads its limits through the app: run inside its context."""
    with app.app_context():
        yield app


@pytest.mark.parametrize("terminated", [False, True], ids=["content-length", "terminated"])
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("body", BODIES)
def test_a_form_body_parses_to_what_flasks_request_gives(
    in_app: Flask, body: bytes, content_type: str, terminated: bool
) -> None:
    ours = in_app.request_class(environ_for(body, content_type, terminated=terminated))
    flasks = FlaskRequest(environ_for(body, content_type, terminated=terminated))

    assert type(ours) is not FlaskRequest
    assert parsed(ours) == parsed(flasks)


def outcome(request: Any) -> tuple[Any, ...]:
    try:
        return parsed(request)
    except Exception as error:  # the outcome compared is the error's type
        return (type(error),)


def test_a_urlencoded_body_over_the_length_limit_is_refused_as_flask_refuses_it(
    in_app: Flask,
) -> None:
    body = b"code=" + b"x" * 100
    ours = in_app.request_class(environ_for(body, URLENCODED))
    flasks = FlaskRequest(environ_for(body, URLENCODED))
    ours.max_content_length = flasks.max_content_length = 50

    assert outcome(ours) == outcome(flasks) == (RequestEntityTooLarge,)


def test_a_streamed_body_over_the_length_limit_meets_what_flask_gives(in_app: Flask) -> None:
    """With ``wsgi.input_terminated`` (granian) Werkzeug reads up to the limit, no further."""
    body = b"code=" + b"x" * 100
    ours = in_app.request_class(environ_for(body, URLENCODED, terminated=True))
    flasks = FlaskRequest(environ_for(body, URLENCODED, terminated=True))
    ours.max_content_length = flasks.max_content_length = 50

    assert outcome(ours) == outcome(flasks)


def test_a_body_shorter_than_its_content_length_is_a_disconnect_as_in_flask(
    in_app: Flask,
) -> None:
    for request_class in (in_app.request_class, FlaskRequest):
        environ = environ_for(b"code=abc", URLENCODED)
        environ["CONTENT_LENGTH"] = "80"
        with pytest.raises(ClientDisconnected):
            request_class(environ).form  # noqa: B018 - reading it parses the body


def test_a_body_read_before_the_form_is_parsed_from_what_was_read(in_app: Flask) -> None:
    request = in_app.request_class(environ_for(b"a=1&b=2", URLENCODED))

    assert request.get_data() == b"a=1&b=2"
    assert request.form.to_dict() == {"a": "1", "b": "2"}


def test_a_urlencoded_token_request_reaches_the_token_endpoint(app: Flask) -> None:
    answer = app.test_client().post(
        "/token",
        data=b"grant_type=authorization_code&code=nonsense",
        content_type=URLENCODED,
        base_url=ISSUER,
    )

    assert answer.status_code in (400, 401)
    assert answer.get_json()["error"] in ("invalid_client", "invalid_grant")


def answers() -> Iterator[tuple[str, FlaskResponse]]:
    yield "a page", FlaskResponse("<p>hello</p>", mimetype="text/html")
    yield "json", FlaskResponse(b'{"a": 1}', status=201, mimetype="application/json")
    yield "a relative redirect", FlaskResponse("", status=303, headers={"Location": "/a b/ü"})
    yield "content location", FlaskResponse("x", headers={"Content-Location": "/ü"})
    yield "no content", FlaskResponse("", status=204)
    yield "not modified", FlaskResponse("body", status=304, headers={"ETag": '"1"'})
    yield "an informational status", FlaskResponse("", status=103)
    yield "parts without a length", FlaskResponse(["a", b"bc"], mimetype="text/plain")
    yield "a stream", FlaskResponse(iter([b"a", b"b"]), mimetype="text/plain")
    length_set = FlaskResponse("abc")
    length_set.headers["Content-Length"] = "3"
    yield "a length the view set", length_set


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_answer_goes_out_with_the_status_headers_and_body_werkzeug_gives(
    app: Flask, method: str
) -> None:
    environ = environ_for(b"", "text/plain")
    environ["REQUEST_METHOD"] = method
    # Each answer made twice: a stream is read once.
    for (name, answer), (_, same) in zip(answers(), answers(), strict=True):
        ours = app.response_class.force_type(answer, environ)
        body, status, headers = ours.get_wsgi_response(environ)
        werkzeug_body, werkzeug_status, werkzeug_headers = WerkzeugResponse.get_wsgi_response(
            app.response_class.force_type(same, environ), environ
        )

        assert type(ours) is app.response_class, name
        assert (status, headers) == (werkzeug_status, werkzeug_headers), name
        assert b"".join(body) == b"".join(werkzeug_body), name
