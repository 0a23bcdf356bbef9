"""The pages' responses made directly (web/flow_render.py page_response, web/answers.py
redirect_to) are byte for byte what Flask makes of the same page or redirect: status,
headers in their order, body, and the app's response class."""

from __future__ import annotations

import flask
import pytest
from flask import Flask, Response

from oidc_link.web.answers import redirect_to
from oidc_link.web.flow_render import page_response
from tests.conftest import ISSUER


def same_response(made: Response, expected: Response) -> None:
    assert made.__class__ is expected.__class__
    assert made.status == expected.status
    assert made.headers.to_wsgi_list() == expected.headers.to_wsgi_list()
    assert made.get_data() == expected.get_data()


LOCATIONS = [
    "/signin/flow_abc",
    "/signin/flow_abc?notice=invalid_code&detail=3",
    "https://shop.example.test/auth/callback?code=abc&state=s&iss=http%3A%2F%2F127.0.0.1",
    "https://rp.example/cb?state=<script>\"x\"&amp;'y'",
    "https://rp.example/cb?state=caf\u00e9&name=\u65e5\u672c",
    "https://rp.example/cb#fragment with spaces",
    "",
]


@pytest.mark.parametrize("status", [302, 303, 307])
def test_a_redirect_is_flasks(app: Flask, status: int) -> None:
    with app.test_request_context("/signin/flow_abc/email", base_url=ISSUER, method="POST"):
        for location in LOCATIONS:
            same_response(redirect_to(location, status), flask.redirect(location, status))


PAGES = [
    ("<!doctype html><p>caf\u00e9 \u65e5\u672c</p>", 200, {}),
    ("<p>x</p>", 400, {}),
    ("<p>x</p>", 429, {}),
    ("", 503, {}),
    ("<p>logo</p>", 200, {"Content-Security-Policy": "default-src 'self'; img-src 'self' x"}),
]


def test_a_page_response_is_what_flask_makes_of_the_page(app: Flask) -> None:
    with app.test_request_context("/signin/flow_abc", base_url=ISSUER):
        for page in PAGES:
            same_response(page_response(page), app.make_response(page))
