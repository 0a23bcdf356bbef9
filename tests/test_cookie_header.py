"""cookie_header.cookie_value gives what Werkzeug's parse_cookie(header).get(name) gives."""

from __future__ import annotations

import random

import pytest
from werkzeug.sansio.http import parse_cookie

from oidc_link.web.cookie_header import cookie_value

NAMES = ["oidc_link_browser", "__Host-oidc_link_session", "oidc_link_authorize", "a", "b"]

HEADERS = [
    "oidc_link_browser=abc",
    "oidc_link_browser=",
    "oidc_link_browser=abc; oidc_link_authorize=flow_1.fp",
    "oidc_link_authorize=flow_1.fp; oidc_link_browser=abc",
    "oidc_link_browser=abc; oidc_link_browser=def",
    "oidc_link_browser=a=b==",
    "oidc_link_browser=a\\b",
    'oidc_link_browser="abc"',
    'oidc_link_browser="a\\"b\\073c"',
    'oidc_link_browser="abc',
    "oidc_link_browser = abc",
    "oidc_link_browser=abc;oidc_link_authorize=x",
    "oidc_link_browser=abc;  a=b",
    "oidc_link_browser=abc;",
    "oidc_link_browser=abc; ",
    " oidc_link_browser=abc",
    "oidc_link_browser=abc\t; a=b",
    "oidc_link_browser\t=abc",
    "oidc_link_browser",
    "oidc_link_browser; a=b",
    "a; oidc_link_browser=x",
    "oidc_link_browser=é",
    "oidc_link_browsé=x; oidc_link_browser=y",
    "oidc_link_browser=x\n",
    "oidc_link_browser=x y",
    "xoidc_link_browser=1; oidc_link_browser=2",
    "oidc_link_browser=1; xoidc_link_browser=2",
    "__Host-oidc_link_session=s; oidc_link_session=t",
    "=x; a=b",
    ";;; a=b",
    "a=b; ; c=d",
    "a=b;; c=d",
    "a==; b=c",
    "a=%20; b=+/",
    "a=,; b=()",
    "",
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("name", NAMES)
def test_hand_picked_headers(header: str, name: str) -> None:
    assert cookie_value(header, name) == parse_cookie(header).get(name)


def test_random_headers() -> None:
    rng = random.Random(16)  # noqa: S311 - test inputs, not secrets
    pieces = ["a", "b", "oidc_link_browser", "=", ";", "; ", " ", "\t", '"', "\\", "é", "x", "0"]
    pieces += ["-", ".", "_", ",", "%", "\n", "==", ";;"]
    checked = plain = 0
    for _ in range(20_000):
        header = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for name in ("a", "b", "oidc_link_browser", "x0"):
            assert cookie_value(header, name) == parse_cookie(header).get(name), header
            checked += 1
    # Headers of the plain shape too, so the split is compared, not only the fallback.
    alphabet = "abxy019_.-=!#$%&'()*+,/:<>?@[]^`{|}~\\"
    for _ in range(5_000):
        pairs = [
            rng.choice(["a", "b", "oidc_link_browser"])
            + "="
            + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
            for _ in range(rng.randint(1, 4))
        ]
        header = "; ".join(pairs)
        for name in ("a", "b", "oidc_link_browser"):
            assert cookie_value(header, name) == parse_cookie(header).get(name), header
            plain += 1
    assert checked and plain
