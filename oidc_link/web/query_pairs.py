"""A request's query as its list of (name, value) pairs, parsed once for the view and for
Werkzeug's ``request.args`` (the request log reads that one).

Werkzeug parses the query with ``urllib.parse.parse_qsl``, which unquotes every name and
value (two calls each, and ``+`` replaced), and the view then listed the pairs back out of
the MultiDict. An /authorize query is mostly pieces with neither ``%`` nor ``+``, which
``unquote`` would hand back as they are: those names and values are taken as they are
here, the others go through the same replace and the same decoding as in ``parse_qsl``:
escapes of ASCII characters in an ASCII text (a redirect URI's ``%3A%2F%2F``) looked up
in a table, anything else (a broken escape, a byte above 0x7F, non-ASCII text) through
``unquote`` itself. The MultiDict is filled as Werkzeug's constructor fills it, without
its per-pair loop when no name repeats.
"""

from __future__ import annotations

from urllib.parse import unquote

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict

# Werkzeug's handler for bytes that are not UTF-8: left percent-encoded (werkzeug.urls).
_ERRORS = "werkzeug.url_quote"
# Each escape of an ASCII character, its hex digits in either case: the character.
_ASCII_ESCAPES = {
    digits: chr(code)
    for code in range(128)
    for pair in [f"{code:02x}"]
    for digits in (pair, pair.upper(), pair[0].upper() + pair[1], pair[0] + pair[1].upper())
}


def query_pairs(http: Request) -> list[tuple[str, str]]:
    """``list(http.args.items(multi=True))``: the query's pairs, each name's values together
    in the order the names first come; ``http.args`` becomes the MultiDict Werkzeug would
    have made, unless something read it already."""
    values = http.__dict__
    args = values.get("args")
    if args is None:
        pairs = parse_query(http.query_string.decode())
        storage = http.parameter_storage_class
        lists = {name: [value] for name, value in pairs}
        if len(lists) == len(pairs) and storage is ImmutableMultiDict:
            # What its constructor fills the dict with, for pairs of distinct names.
            args = values["args"] = ImmutableMultiDict.__new__(ImmutableMultiDict)
            dict.__init__(args, lists)
            return pairs  # no name repeated: already in that order
        args = values["args"] = storage(pairs)
        if len(args) == len(pairs):
            return pairs
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
            name = unquote_piece(name.replace("+", " "))
        if "%" in value or "+" in value:
            value = unquote_piece(value.replace("+", " "))
        pairs.append((name, value))
    return pairs


def unquote_piece(text: str) -> str:
    """``unquote(text, errors="werkzeug.url_quote")``. For an ASCII text whose every ``%``
    begins an escape of an ASCII character the bytes unquote would decode are ASCII, so
    each escape is its character (tests/test_query_pairs.py compares the two)."""
    if text.isascii():
        parts = text.split("%")
        decoded = [parts[0]]
        for part in parts[1:]:
            character = _ASCII_ESCAPES.get(part[:2])
            if character is None:
                return unquote(text, errors=_ERRORS)
            decoded.append(character)
            decoded.append(part[2:])
        return "".join(decoded)
    return unquote(text, errors=_ERRORS)
