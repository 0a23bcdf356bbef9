"""web/plain_flask.py's PlainFlask skips Flask's per-request work the app does not use:
the app as served uses none of it, and each feature put to use still works as in Flask."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from blinker import Signal
from flask import Blueprint, Flask, Response, after_this_request, g, session
from flask import signals as flask_signals
from flask.sessions import NullSession
from werkzeug.exceptions import HTTPException

from tests.conftest import ISSUER

# Every signal PlainFlask sends only to a connected receiver.
SKIPPED_SIGNALS = (
    "appcontext_pushed",
    "request_started",
    "request_finished",
    "request_tearing_down",
    "appcontext_tearing_down",
    "appcontext_popped",
)


@contextmanager
def receiving(app: Flask) -> Iterator[list[str]]:
    """Each skipped signal connected to a receiver that notes the signal's name."""
    heard: list[str] = []

    def receiver_for(name: str) -> Callable[..., None]:
        def receive(_sender: object, **_extra: Any) -> None:
            heard.append(name)

        return receive

    with ExitStack() as stack:
        for name in SKIPPED_SIGNALS:
            signal: Signal = getattr(flask_signals, name)
            stack.enter_context(signal.connected_to(receiver_for(name), app))
        yield heard


def probe(app: Flask, *, name: str = "probe") -> Blueprint:
    """A blueprint of small views and hooks, registered on ``app`` before its first request
    (as Flask requires), noting in ``app.config["PROBE"]`` what ran in which order."""
    ran: list[str] = app.config.setdefault("PROBE", [])
    blueprint = Blueprint(name, __name__, url_prefix=f"/_{name}")

    @blueprint.url_value_preprocessor
    def note_values(endpoint: str | None, values: dict[str, Any] | None) -> None:
        ran.append(f"values {endpoint} {values}")

    @blueprint.before_request
    def note_before() -> None:
        ran.append("blueprint before")

    @blueprint.after_request
    def note_after(response: Response) -> Response:
        ran.append("blueprint after")
        return response

    @blueprint.teardown_request
    def note_teardown(error: BaseException | None) -> None:
        ran.append(f"blueprint teardown {type(error).__name__}")

    @blueprint.route("/item/<int:number>")
    def item(number: int) -> Response:
        ran.append(f"view {number} request id {bool(g.get('request_id'))}")

        @after_this_request
        def note_this(response: Response) -> Response:
            ran.append("after this request")
            return response

        return Response(f"item {number}", mimetype="text/plain")

    @blueprint.route("/text")
    def text() -> tuple[str, int, dict[str, str]]:
        return "made by make_response", 201, {"X-Probe": "yes"}

    @blueprint.route("/session", methods=["GET", "POST"])
    def remembered() -> str:
        if "seen" in session:
            return f"seen {session['seen']}"
        session["seen"] = "once"
        return "new"

    @blueprint.route("/fails")
    def fails() -> str:
        raise RuntimeError("a bug")

    app.register_blueprint(blueprint)
    return blueprint


def test_the_app_as_served_connects_no_skipped_signal_and_opens_no_session(app: Flask) -> None:
    probe(app)
    answer = app.test_client().get("/_probe/item/1", base_url=ISSUER)

    assert answer.status_code == 200
    assert app.secret_key is None
    assert [name for name in SKIPPED_SIGNALS if getattr(flask_signals, name).receivers] == []
    with app.test_request_context("/_probe/item/1", base_url=ISSUER):
        assert isinstance(session._get_current_object(), NullSession)  # type: ignore[attr-defined]


def test_a_connected_receiver_hears_every_signal_of_a_request(app: Flask) -> None:
    probe(app)
    client = app.test_client()

    with receiving(app) as heard:
        answer = client.get("/_probe/item/7", base_url=ISSUER)

    assert answer.get_data(as_text=True) == "item 7"
    assert heard == [
        "appcontext_pushed",
        "request_started",
        "request_finished",
        "request_tearing_down",
        "appcontext_tearing_down",
        "appcontext_popped",
    ]


def test_hooks_run_in_flasks_order_app_first_then_the_blueprint_and_back(app: Flask) -> None:
    probe(app)
    client = app.test_client()

    for number in (1, 2):  # the second from the hooks collected after the first request
        app.config["PROBE"].clear()
        answer = client.get(f"/_probe/item/{number}", base_url=ISSUER)

        assert answer.status_code == 200
        assert answer.headers["Request-Id"].startswith("req_")
        assert app.config["PROBE"] == [
            f"values probe.item {{'number': {number}}}",
            "blueprint before",
            f"view {number} request id True",
            "after this request",
            "blueprint after",
            "blueprint teardown NoneType",
        ]


def test_a_hook_added_after_the_first_request_is_refused_so_none_is_missed(app: Flask) -> None:
    app.test_client().get("/healthz", base_url=ISSUER)

    with pytest.raises(AssertionError, match="already handled its first request"):
        app.before_request(lambda: None)


def test_a_view_answering_a_tuple_is_made_into_a_response_as_flask_does(app: Flask) -> None:
    probe(app)
    answer = app.test_client().get("/_probe/text", base_url=ISSUER)

    assert answer.status_code == 201
    assert answer.headers["X-Probe"] == "yes"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.get_data(as_text=True) == "made by make_response"


def test_an_error_in_a_view_gets_the_error_page_and_the_teardown_hooks_still_run(
    app: Flask,
) -> None:
    probe(app)
    app.config["PROBE"].clear()
    answer = app.test_client().get("/_probe/fails", base_url=ISSUER)

    assert answer.status_code == 500
    assert answer.headers["Request-Id"] in answer.get_data(as_text=True)
    # The app's error handler answered it: as in Flask, teardown is told of no error.
    assert app.config["PROBE"][-1] == "blueprint teardown NoneType"


def test_given_a_secret_key_the_session_is_opened_and_saved_as_in_flask(app: Flask) -> None:
    app.secret_key = "a key only this test uses"
    probe(app)
    client = app.test_client()

    first = client.post("/_probe/session", base_url=ISSUER)
    second = client.get("/_probe/session", base_url=ISSUER)

    assert first.get_data(as_text=True) == "new"
    assert "session=" in first.headers["Set-Cookie"]
    assert second.get_data(as_text=True) == "seen once"


def adapter_of(app: Flask, adapter_for: Callable[..., Any], environ: dict[str, Any]) -> Any:
    """What routing sees of a request: the adapter's parts, the request's host, or the error
    that makes the request a 400."""
    request = app.request_class(environ)
    try:
        adapter = adapter_for(app, request)
    except HTTPException as error:
        return type(error), error.code
    return (
        request.host,
        adapter.server_name,
        adapter.script_name,
        adapter.subdomain,
        adapter.url_scheme,
        adapter.path_info,
        adapter.default_method,
        adapter.query_args,
        adapter.websocket,
    )


ENVIRONS: tuple[dict[str, Any], ...] = (
    {},
    {"HTTP_HOST": "Example.TEST:443", "wsgi.url_scheme": "https"},
    {"HTTP_HOST": "example.test:80"},
    {"HTTP_HOST": "[::1]:9999"},
    {"HTTP_HOST": "bücher.example"},
    {"HTTP_HOST": "a..b"},
    {"HTTP_HOST": "x" * 70 + ".example"},
    {"HTTP_HOST": "bad host\\"},
    {"SERVER_NAME": "10.0.0.1", "SERVER_PORT": "8080"},
    {"SCRIPT_NAME": "/mounted", "PATH_INFO": "/caf\xc3\xa9", "QUERY_STRING": "a=%C3%A9&b"},
    {"PATH_INFO": "", "REQUEST_METHOD": "POST"},
    {"HTTP_CONNECTION": "keep-alive"},
    {"HTTP_CONNECTION": "keep-alive, Upgrade", "HTTP_UPGRADE": "websocket"},
)


@pytest.mark.parametrize("changes", ENVIRONS)
def test_routing_sees_each_request_as_flasks_own_url_adapter_shows_it(
    app: Flask, changes: dict[str, Any]
) -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "9999",
        "HTTP_HOST": "127.0.0.1:9999",
        "PATH_INFO": "/authorize",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "http",
        **changes,
    }
    for _ in range(2):  # the second time from the server names kept
        ours = adapter_of(app, type(app).create_url_adapter, dict(environ))
        flasks = adapter_of(app, Flask.create_url_adapter, dict(environ))

        assert ours == flasks
