"""/authorize's query parse (web/query_pairs.py) against Werkzeug's ``request.args``, which
is ``parse_qsl(..., keep_blank_values=True, errors="werkzeug.url_quote")``."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, unquote, urlencode

import pytest
from flask import Flask, Request

from oidc_link.web.query_pairs import parse_query, query_pairs, unquote_piece

QUERIES = [
    "",
    "&",
    "&&a=1&&",
    "a",
    "a=",
    "=",
    "=1",
    "a=1=2",
    "a=1&a=2&b",
    "a+b=c+d",
    "a%20b=c%2Bd",
    "%=%",
    "%2=%zz&%%=1",
    "a=%FF%FE",
    "a=%C3%A9&%C3=x",
    "a=é&ü=ö",
    "a=1;b=2",
    "redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid+email",
    "a=%2B+%2b",
    "+=+&++=++",
    "a=%0A%00%7F",
    "state=%22%3Cscript%3E",
]


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_parses_into_the_pairs_werkzeugs_args_holds(query: str) -> None:
    expected = parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote")

    assert parse_query(query) == expected


def test_random_queries_parse_as_werkzeug_parses_them() -> None:
    rng = random.Random(16)  # noqa: S311 - test inputs, not secrets
    alphabet = "ab=&+%2BFfé;0 \x00"
    for _ in range(5000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        expected = parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote")
        assert parse_query(query) == expected, query


def test_an_encoded_request_parses_back_to_its_parameters() -> None:
    parameters = [("scope", "openid email"), ("state", "a&b=c"), ("nonce", "é+%"), ("x", "")]

    assert parse_query(urlencode(parameters)) == parameters


def _request(query: bytes) -> Request:
    app = Flask(__name__)
    environ = {"QUERY_STRING": query.decode("latin-1")}
    with app.test_request_context("/authorize", environ_overrides=environ) as context:
        return context.request


@pytest.mark.parametrize("query", [q.encode() for q in QUERIES] + [b"a=\xc3\xa9&b=%41"])
def test_the_requests_args_are_the_multidict_werkzeug_would_make(query: bytes) -> None:
    ours, werkzeugs = _request(query), _request(query)

    pairs = query_pairs(ours)

    assert pairs == list(werkzeugs.args.items(multi=True))
    assert type(ours.args) is type(werkzeugs.args)
    assert list(ours.args.items(multi=True)) == pairs


def test_args_read_before_are_the_ones_listed() -> None:
    http = _request(b"a=1&b=2&a=3")
    args = http.args

    assert query_pairs(http) == [("a", "1"), ("a", "3"), ("b", "2")]
    assert http.args is args


def test_a_repeated_name_lists_its_values_together_as_the_multidict_does() -> None:
    # The order the repeated-parameter checks see: the first name repeated is 'b' in the
    # query, 'a' in the MultiDict's listing, which the view has always used.
    assert query_pairs(_request(b"a=1&b=2&b=3&a=4&c=5")) == [
        ("a", "1"),
        ("a", "4"),
        ("b", "2"),
        ("b", "3"),
        ("c", "5"),
    ]


def test_a_query_that_is_not_utf8_fails_as_werkzeugs_args_does() -> None:
    with pytest.raises(UnicodeDecodeError):
        _ = _request(b"a=\xff").args
    with pytest.raises(UnicodeDecodeError):
        query_pairs(_request(b"a=\xff"))


def test_a_piece_unquotes_as_unquote_does() -> None:
    escapes = [f"%{code:02x}" for code in range(256)] + [f"%{code:02X}" for code in range(256)]
    escapes += ["%", "%4", "%g1", "%1g", "%%41", "%-1", "% 1"]
    for escape in escapes:
        for text in (escape, "a" + escape, escape + "b", "x" + escape + escape + "y", escape * 3):
            assert unquote_piece(text) == unquote(text, errors="werkzeug.url_quote"), text
    rng = random.Random(27)  # noqa: S311 - test inputs, not secrets
    alphabet = "%0123456789aAbBcCdDeEfFgG:/ é\x00\x7f"
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 16)))
        assert unquote_piece(text) == unquote(text, errors="werkzeug.url_quote"), text
