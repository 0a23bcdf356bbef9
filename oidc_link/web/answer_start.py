"""An answer's first fields (status line, headers, body) for the shapes every view of ours
gives, set as Werkzeug's ``Response.__init__`` would set them, without its general steps:
a ``Headers`` filled one ``add`` at a time, the Content-Type looked for and then ``set``
(a scan of the list, a value check), the status parsed, ``set_data`` setting the
Content-Length by another ``set``. About 15 calls an answer, on every exchange.

``answer_fields`` gives ``None`` for anything outside its narrow case, and the caller goes
to Werkzeug; tests/test_answer_start.py compares the two on many answers.
"""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.utils import get_content_type

# Werkzeug's status line for each code it names ("404 NOT FOUND"): ``_clean_status``'s.
STATUS_LINES = {code: f"{code} {text.upper()}" for code, text in HTTP_STATUS_CODES.items()}
# Header names Werkzeug's ``__init__`` would look for or set itself: left to it.
_SET_BY_WERKZEUG = frozenset({"content-type", "content-length"})


def answer_fields(
    body: Any,
    status: Any,
    headers: Any,
    mimetype: str | None,
    content_type: str | None,
    default_status: int,
    default_mimetype: str | None,
) -> tuple[str, int, Headers, bytes] | None:
    """The status line, code, headers and body bytes of an answer made from a ``str`` body,
    a known ``int`` status or none, and no headers or a ``dict`` of ``str`` to ``str``
    (no Content-Type or Content-Length, no line break): the headers in Werkzeug's order
    (the given ones, then Content-Type, then Content-Length). ``None`` otherwise."""
    if body.__class__ is not str:
        return None
    if status is None:
        status = default_status
    if status.__class__ is not int:
        return None
    line = STATUS_LINES.get(status)
    if line is None:
        return None
    items: list[tuple[str, str]] = []
    if headers is not None:
        if headers.__class__ is not dict:
            return None
        for name, value in headers.items():
            if (
                name.__class__ is not str
                or value.__class__ is not str
                or "\n" in value
                or "\r" in value
                or name.lower() in _SET_BY_WERKZEUG
            ):
                return None
            items.append((name, value))
    if content_type is None:
        if mimetype is None:
            mimetype = default_mimetype
        if mimetype is not None:
            content_type = get_content_type(mimetype, "utf-8")
    if content_type is not None:
        if content_type.__class__ is not str or "\n" in content_type or "\r" in content_type:
            return None
        items.append(("Content-Type", content_type))
    data = body.encode()
    items.append(("Content-Length", str(len(data))))
    made = Headers()
    made._list = items  # Werkzeug's own list, as its ``add`` would have filled it
    return line, status, made, data
