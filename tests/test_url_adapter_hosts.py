"""PlainFlask keeps each request's host and server name by all that Werkzeug's ``get_host``
reads (scheme, Host header, server name and port): requests that differ in any of them,
one after another and in any order, are routed as Flask's own URL adapter routes them."""

from __future__ import annotations

import itertools
import random
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from oidc_link.web.plain_flask import _KEPT_HOSTS, PlainFlask

SCHEMES = ("http", "https")
HOSTS = (
    None,
    "",
    "example.test",
    "Example.TEST:443",
    "example.test:80",
    "example.test:443",
    "[::1]:9999",
    "bücher.example",
    "a..b",
    "bad host\\",
    "x:0",
    "x:99999",
    "h:8080",
)
SERVERS = (
    (None, None),
    ("10.0.0.1", "8080"),
    ("10.0.0.1", "80"),
    ("::1", "443"),
    ("/tmp/sock", None),
    ("example.test", "x"),
)


def _app() -> PlainFlask:
    app = PlainFlask(__name__)
    app.add_url_rule("/a/<name>", "a", lambda name: name)
    return app


def _environ(
    scheme: str, host: str | None, server: tuple[str | None, str | None]
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/a/b",
        "QUERY_STRING": "q=1",
        "wsgi.url_scheme": scheme,
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    name, port = server
    if name is not None:
        environ["SERVER_NAME"] = name
    if port is not None:
        environ["SERVER_PORT"] = port
    return environ


def _seen(app: Flask, adapter_for: Any, environ: dict[str, Any]) -> Any:
    request = app.request_class(dict(environ))
    try:
        adapter = adapter_for(app, request)
    except HTTPException as error:
        return type(error), error.code
    return (
        request.host,
        adapter.server_name,
        adapter.url_scheme,
        adapter.script_name,
        adapter.path_info,
        adapter.query_args,
    )


def test_every_mix_of_what_get_host_reads_in_any_order() -> None:
    ours = _app()
    environs = [_environ(*mix) for mix in itertools.product(SCHEMES, HOSTS, SERVERS)]
    rng = random.Random(27)  # noqa: S311 - test inputs, not secrets
    for _ in range(3):  # more keys than the table keeps: it is emptied and filled again
        rng.shuffle(environs)
        for environ in environs:
            assert _seen(ours, PlainFlask.create_url_adapter, environ) == _seen(
                ours, Flask.create_url_adapter, environ
            ), environ
    assert len(ours._server_names) <= _KEPT_HOSTS


def test_without_a_request_there_is_no_adapter_unless_a_server_name_is_set() -> None:
    app = _app()
    assert app.create_url_adapter(None) is None
    app.config["SERVER_NAME"] = "example.test"
    adapter = app.create_url_adapter(None)
    assert adapter is not None
    assert adapter.server_name == "example.test"
