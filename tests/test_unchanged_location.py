"""web/fixed_limits.py sends a Location as it is when Werkzeug's iri_to_uri would give it
back unchanged: its pattern never takes a URL that iri_to_uri changes (or refuses), and
the answers go out as Werkzeug sends them, whatever the Location."""

from __future__ import annotations

import itertools
import random

import pytest
from flask import Flask
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Response as WerkzeugResponse

from oidc_link.web.fixed_limits import _UNCHANGED_LOCATION, response_class_for

LOCATIONS = (
    "https://shop.example.test/callback?code=AbC_-9&state=s&iss=http%3A%2F%2F127.0.0.1%3A9999",
    "https://shop.example.test/cb#code=x&state=y",
    "http://127.0.0.1:9999/signin/flow_AbC-_x/code",
    "/signin/flow_AbC-_x/code",
    "/signin/flow_x?step=2",
    "/",
    "https://rp.example",
    "https://rp.example?x=1",
    "https://rp.example/",
    "https://RP.example/cb",  # the host is lower-cased
    "HTTPS://rp.example/cb",  # the scheme is lower-cased
    "https://rp.example:0443/cb",  # the port is read as a number
    "https://rp.example:0/cb",
    "https://rp.example:65535/cb",
    "https://rp.example:65536/cb",  # refused
    "https://rp.example:/cb",
    "https://rp.example:x/cb",
    "https://user:pw@rp.example/cb",
    "https://@rp.example/cb",
    "https://[::1]:8080/cb",
    "https://rp..example/cb",  # an empty label: the IDNA codec refuses it
    "https://rp.example./cb",
    "https://" + "a" * 63 + ".example/cb",
    "https://" + "a" * 64 + ".example/cb",
    "https://xn--n3h.net/cb",
    "https://\u2603.net/cb",
    "https://rp.example/p\u00e5th",
    "https://rp.example/a b",
    "https://rp.example/a%20b?q=%zz",
    "https://rp.example/cb?",
    "https://rp.example/cb#",
    "https://rp.example/cb?#",
    "https://rp.example/cb?a=1#",
    "https://rp.example/cb?a=[1]",
    "https://rp.example/cb?a=1#f#g",
    "https://rp.example/cb?a=1?b=2",
    "https://rp.example/a\\b",
    "https://rp.example/a|b",
    "https://rp.example/a^b",
    'https://rp.example/a"b',
    "https://rp.example/a<b>",
    "https://rp.example/a{b}",
    "https://rp.example/a`b",
    "https:/rp.example/cb",
    "https:rp.example",
    "https:///cb",
    "//rp.example/cb",
    "///cb",
    "//",
    "",
    "cb",
    "flow_x/code",
    "./cb",
    "?a=1",
    "#f",
    "mailto:a@b.example",
    "custom.scheme+x-y://callback/path",
    "1https://rp.example/cb",
    " https://rp.example/cb",
    "https://rp.example/cb ",
    "https://rp.example/c\tb",
    "https://rp.example/c\x00b",
    "https://rp.example/%",
    "https://rp.example/~user/!$&'()*+,;=:@",
    "/a//b",
    "/a:b",
    "/a?b=http://c:d@e",
)
# Characters that matter to urlsplit, quote, the IDNA codec and urlunsplit.
ALPHABET = "aZ09-._~%!$&'()*+,;=:@/?#[] \\|\"<>{}^`\u00e5\u2603\t"


def random_locations(count: int) -> list[str]:
    chooser = random.Random(16)  # noqa: S311 - repeatable test input, no secret
    starts = ("https://rp.example", "http://127.0.0.1:9999", "/", "", "https://", "//")
    return [
        chooser.choice(starts) + "".join(chooser.choices(ALPHABET, k=chooser.randint(0, 12)))
        for _ in range(count)
    ]


def iri_to_uri_or_error(location: str) -> str | None:
    try:
        return iri_to_uri(location)
    except ValueError:  # UnicodeError included
        return None


def test_a_location_taken_as_it_is_is_one_iri_to_uri_leaves_unchanged() -> None:
    taken = [
        location
        for location in [*LOCATIONS, *random_locations(5000)]
        if _UNCHANGED_LOCATION.fullmatch(location)
    ]
    assert len(taken) > 300  # the random ones reach the pattern too
    for location in taken:
        assert iri_to_uri_or_error(location) == location, location


def test_the_redirects_of_a_sign_in_are_taken_as_they_are() -> None:
    for location in LOCATIONS[:6]:
        assert _UNCHANGED_LOCATION.fullmatch(location), location


@pytest.mark.parametrize(
    ("location", "status"),
    list(itertools.product([*LOCATIONS[:12], "/a b/\u00fc", "https://rp.example/cb?"], [302, 303])),
)
def test_a_redirect_goes_out_as_werkzeug_sends_it(location: str, status: int) -> None:
    app = Flask(__name__)
    response_class = response_class_for(app.config)
    environ = {"REQUEST_METHOD": "GET", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9999"}

    def answer() -> WerkzeugResponse:
        made = response_class("<p>Redirecting</p>", status=status, mimetype="text/html")
        made.headers["Location"] = location
        made.headers["Request-Id"] = "req_abc"
        return made

    if iri_to_uri_or_error(location) is None:
        with pytest.raises(ValueError):
            WerkzeugResponse.get_wsgi_response(answer(), environ)
        with pytest.raises(ValueError):
            answer().get_wsgi_response(environ)
        return
    ours = answer().get_wsgi_response(environ)
    theirs = WerkzeugResponse.get_wsgi_response(answer(), environ)
    assert ours[1:] == theirs[1:]
    assert b"".join(ours[0]) == b"".join(theirs[0])


def test_two_locations_go_out_as_werkzeug_sends_them() -> None:
    app = Flask(__name__)
    response_class = response_class_for(app.config)
    environ = {"REQUEST_METHOD": "GET"}

    def answer() -> WerkzeugResponse:
        made = response_class("", status=302)
        made.headers.add("Location", "/a")
        made.headers.add("Location", "/b")
        return made

    assert (
        answer().get_wsgi_response(environ)[1:]
        == WerkzeugResponse.get_wsgi_response(answer(), environ)[1:]
    )
