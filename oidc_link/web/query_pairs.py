"""A request's query as its list of (name, value) pairs, parsed once for the view and for
Werkzeug's ``request.args`` (the request log reads that one).

Werkzeug parses the query with ``urllib.parse.parse_qsl``, which unquotes every name and
value (two calls each, and ``+`` replaced), and the view then listed the pairs back out of
the MultiDict. An /authorize query is mostly pieces with neither ``%`` nor ``+``, which
``unquote`` would hand back as they are: those names and values are taken as they are
here, the others go through the same replace and ``unquote`` as in ``parse_qsl``.
"""

from __future__ import annotations

from urllib.parse import unquote

from flask import Request

# Werkzeug's handler for bytes that are not UTF-8: left percent-encoded (werkzeug.urls).
_ERRORS = "werkzeug.url_quote"


def query_pairs(http: Request) -> list[tuple[str, str]]:
    """``list(http.args.items(multi=True))``: the query's pairs, each name's values together
    in the order the names first come; ``http.args`` becomes the MultiDict Werkzeug would
    have made, unless something read it already."""
    values = http.__dict__
    args = values.get("args")
    if args is None:
        pairs = parse_query(http.query_string.decode())
        args = values["args"] = http.parameter_storage_class(pairs)
        if len(args) == len(pairs):
            return pairs  # no name repeated: already in that order
    return list(args.items(multi=True))


def parse_query(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote")``, as
    Werkzeug's ``Request.args`` calls it (tests/test_query_pairs.py compares the two)."""
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "), errors=_ERRORS)
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "), errors=_ERRORS)
        pairs.append((name, value))
    return pairs
