"""A plain token request's body read and parsed before Flask (web/token_fast_path.py), to
the same bytes and the same pairs as Werkzeug and the token view get (web/fixed_limits.py,
web/protocol.py ``_form_pairs``), and the client its request line names
(web/request_log.py). tests/test_token_fast_path.py compares each with what it replaces."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING
from urllib.parse import unquote

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler

from oidc_link.web.request_log import basic_client

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# A token request's body is a few hundred bytes; a larger one (up to the app's own limit,
# none by default) is left to Flask, which parses it the same way.
MAX_FAST_BODY = 64 * 1024
_MAX_LENGTH_DIGITS = len(str(MAX_FAST_BODY))
# Werkzeug's handler for bytes that do not decode: kept %-escaped, as its form parser keeps
# them (registered by werkzeug.urls).
_URL_QUOTE = "werkzeug.url_quote"


def plain_body(environ: WSGIEnvironment) -> bytes | None:
    """The body as Werkzeug's ``Request.stream`` gives it (no limit set), or None, nothing
    read, for a ``Content-Length`` that is not a few plain digits up to MAX_FAST_BODY. A body
    shorter than its length (a client gone) goes to Flask with the bytes that came."""
    length = environ.get("CONTENT_LENGTH")
    if (
        length is None
        or not 0 < len(length) <= _MAX_LENGTH_DIGITS
        or not (length.isdigit() and length.isascii())
        or int(length) > MAX_FAST_BODY
    ):
        return None
    stream = environ["wsgi.input"]
    if "wsgi.input_terminated" in environ:
        # The server ends the stream (granian): Werkzeug reads it whole, as here.
        body: bytes = stream.read()
        return body
    size = int(length)
    parts = []
    left = size
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    body = b"".join(parts)
    if left > 0:
        environ["wsgi.input"] = io.BytesIO(body)  # Flask says ClientDisconnected itself
        return None
    return body


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The form's pairs as the token view reads them (web/protocol.py ``_form_pairs``):
    parsed as web/fixed_limits.py parses a urlencoded body (a body not in UTF-8 is an empty
    form), then each name's values together, in the order the names first came, as a
    MultiDict holds them."""
    try:
        pairs = parsed_pairs(body.decode())
    except ValueError:
        return []
    if len({name for name, _ in pairs}) == len(pairs):
        return pairs
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return [(name, value) for name, values in grouped.items() for value in values]


def parsed_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")``, its loop
    written out: a name or value is given to ``unquote`` (the same call) only if it holds a
    ``%``, and a ``+`` is replaced only where there is one. parse_qsl's argument checks and
    coercions, and an ``unquote`` call per part, were most of its cost for a token request."""
    pairs = []
    for segment in text.split("&"):
        if not segment:
            continue
        name, _, value = segment.partition("=")  # no "=": a blank value (keep_blank_values)
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors=_URL_QUOTE)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors=_URL_QUOTE)
        pairs.append((name, value))
    return pairs


def configured_client(
    known: frozenset[str], form: list[tuple[str, str]], authorization: str | None
) -> str | None:
    """The request line's client id, as web/request_log.py finds it for a token request
    (no query string): the form's first ``client_id``, then Basic auth's user, the first
    that is configured."""
    named = next((value for name, value in form if name == "client_id"), None)
    if named and named in known:
        return named
    return basic_client(authorization, known)
