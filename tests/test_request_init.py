"""web/fixed_limits.py's request sets Werkzeug's request fields in one step: for every
environ below, the same fields (or the same error) as Werkzeug's own ``__init__``."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Flask, Request

from oidc_link.web.fixed_limits import request_class_for

PARTS: dict[str, tuple[Any, ...]] = {
    "REQUEST_METHOD": (None, "GET", "post", "PaTcH", ""),
    "wsgi.url_scheme": (None, "https"),
    "SERVER_NAME": (None, "10.0.0.1"),
    "SERVER_PORT": (None, "8080", "x"),
    "SCRIPT_NAME": (None, "", "/", "/mounted/", "/caf\xc3\xa9", "//a//", "\u2603"),
    "PATH_INFO": (None, "", "/", "//x", "/caf\xc3\xa9/\xff", "x/y/", "/%2F"),
    "QUERY_STRING": (None, "", "a=1&b=%C3%A9", "\xe9"),
    "REMOTE_ADDR": (None, "192.0.2.1"),
}


def _fields(cls: type[Request], environ: dict[str, Any], **options: Any) -> Any:
    try:
        request = cls(environ, **options)
    except Exception as error:  # the same error is part of the answer
        return type(error)
    values = dict(vars(request))
    headers = values.pop("headers")
    own = values.pop("environ") is environ and headers.environ is environ
    return type(headers), own, values, environ.get("werkzeug.request")


def test_every_mix_of_environ_keys_made_as_werkzeug_makes_it() -> None:
    ours = request_class_for(Flask(__name__).config)
    names = list(PARTS)
    for values in itertools.product(*PARTS.values()):
        environ = {
            name: value for name, value in zip(names, values, strict=True) if value is not None
        }
        mine, theirs = dict(environ), dict(environ)
        got, expected = _fields(ours, mine), _fields(Request, theirs)
        if isinstance(got, tuple):
            # Each request notes itself in its own environ.
            assert got[3] is not None
            assert expected[3] is not None
            got, expected = got[:3], expected[:3]
        assert got == expected, environ


def test_a_shallow_or_unpopulated_request_leaves_the_environ_alone() -> None:
    ours = request_class_for(Flask(__name__).config)
    for options in ({"shallow": True}, {"populate_request": False}):
        environ: dict[str, Any] = {"PATH_INFO": "/x"}
        request = ours(environ, **options)
        assert "werkzeug.request" not in environ
        assert request.shallow is options.get("shallow", False)
