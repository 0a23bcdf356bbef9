"""web/browser.py reads our cookies from the environ and writes the browser session's
cookies out itself, without Werkzeug's per-request walks: what it reads and writes must be
what Werkzeug's ``request.cookies`` and ``response.set_cookie`` give, byte for byte, for
whatever a browser (or someone) sends.
"""

from __future__ import annotations

import pytest
from flask import Flask, Response, request

from oidc_link.web.browser import (
    AUTHORIZE_COOKIE,
    AUTHORIZE_PATH,
    bind_browser,
    cookie_of,
    remember_authorize_flow,
)

NAME = "oidc_link_browser"

# Cookie headers as browsers send them, and as they should not be sent.
HEADERS = [
    f"{NAME}=abc-DEF_123",
    f"other=1; {NAME}=abc; third=3",
    f"x{NAME}=planted; {NAME}=mine",  # our name inside another's
    f"{NAME}x=planted",
    f"__Host-{NAME}=host; {NAME}=plain",
    f"{NAME}=first; {NAME}=second",  # the first wins, as in Werkzeug's MultiDict
    f"  {NAME} = spaced ;other=1",
    f"{NAME}=",
    f"{NAME}",
    f'{NAME}="quoted \\"value\\"; with a semicolon"; other=2',
    f'other="a;{NAME}=inside"; {NAME}=outside',
    f"a b={NAME}; {NAME}=c d",  # not cookies Werkzeug takes
    f"{NAME}=caf\u00c3\u00a9",  # UTF-8 bytes as the WSGI environ carries them (latin-1)
    f";;{NAME}=after;;",
    f"{NAME}=tab\tinside; {NAME}=ok",
    "other=1",
    "",
]


@pytest.mark.parametrize("header", HEADERS)
def test_a_cookie_is_read_as_werkzeug_reads_it(app: Flask, header: str) -> None:
    with app.test_request_context("/", headers={"Cookie": header} if header else {}):
        http = request._get_current_object()  # type: ignore[attr-defined]
        for name in (NAME, f"__Host-{NAME}", "other", "third", "missing"):
            assert cookie_of(http, name) == http.cookies.get(name)


def test_a_request_without_a_cookie_header_has_no_cookie(app: Flask) -> None:
    with app.test_request_context("/"):
        assert cookie_of(request._get_current_object(), NAME) is None  # type: ignore[attr-defined]


VALUES = [
    "Zm9vYmFy-_0123456789abcdefABCDEF",
    "flow_abc.0123456789abcdef0123456789abcdef",
    "with space",
    'with "quotes"',
    "semi;colon",
    "caf\u00e9",
    "",
    "x" * 300,
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("secure", [False, True])
def test_the_binding_cookie_is_written_as_werkzeug_writes_it(
    app: Flask, value: str, secure: bool
) -> None:
    with app.test_request_context("/"):
        ours, werkzeugs = Response(), Response()
        bind_browser(ours, value, secure=secure)
        name = ("__Host-" if secure else "") + NAME
        werkzeugs.set_cookie(name, value, httponly=True, secure=secure, samesite="Lax", path="/")
        assert ours.headers.getlist("Set-Cookie") == werkzeugs.headers.getlist("Set-Cookie")


@pytest.mark.parametrize("flow_id", ["flow_3kTq-_x", "flow with space", "flow\u00e9"])
@pytest.mark.parametrize("secure", [False, True])
def test_the_authorize_cookie_is_written_as_werkzeug_writes_it(
    app: Flask, flow_id: str, secure: bool
) -> None:
    fingerprint = "0123456789abcdef0123456789abcdef"
    with app.test_request_context("/"):
        ours, werkzeugs = Response(), Response()
        remember_authorize_flow(ours, flow_id, fingerprint, secure=secure)
        werkzeugs.set_cookie(
            AUTHORIZE_COOKIE,
            f"{flow_id}.{fingerprint}",
            httponly=True,
            secure=secure,
            samesite="Lax",
            path=AUTHORIZE_PATH,
        )
        assert ours.headers.getlist("Set-Cookie") == werkzeugs.headers.getlist("Set-Cookie")
