"""route_shortcut.RouteShortcut finds what Werkzeug's MapAdapter.match finds, or leaves it
to Werkzeug: on the app's own routes and on a map built to trip it."""

from __future__ import annotations

import random

import pytest
from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter, Rule

from oidc_link.web.route_shortcut import CountedMap, RouteShortcut
from tests.conftest import ISSUER

METHODS = ("GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "get", "post")
ARGUMENTS = [
    "flow_abc",
    "a",
    "é",
    "a b",
    "a%2Fb",
    "%",
    ".",
    "..",
    "a\nb",
    "a\tb",
    "x" * 300,
    "email",
    "code",
    "signin",
    "static",
    "<x>",
    "a?b",
    "a#b",
    "a;b",
]


def werkzeug_answer(adapter: MapAdapter) -> object:
    try:
        return adapter.match(return_rule=True)
    except HTTPException as error:
        return error


def compared(shortcut: RouteShortcut, adapter: MapAdapter) -> bool:
    """Whether the shortcut answered (True) or left it to Werkzeug; fails on a difference."""
    found = shortcut.match(adapter)
    expected = werkzeug_answer(adapter)
    if found is None:
        return False
    assert not isinstance(expected, HTTPException), (adapter.path_info, expected)
    rule, values = expected  # type: ignore[misc]
    assert found[0] is rule, adapter.path_info
    assert found[1] == values, adapter.path_info
    return True


def paths_for(rules: list[Rule], rng: random.Random) -> list[str]:
    paths = ["", "/", "//", "/nowhere", "/signin", "/signin/", "/signin//email", "//authorize"]
    for rule in rules:
        for argument in ARGUMENTS:
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<{name}>", argument)
            paths += [path, path + "/", "/" + path, path.replace("/", "//", 1), path + "x"]
            paths.append(path.upper())
        paths.append(rule.rule)
    for _ in range(2_000):
        parts = rng.choices(["signin", "flow", "email", "code", "", "token", "authorize", "é"], k=3)
        paths.append("/" + "/".join(parts[: rng.randint(1, 3)]))
    return paths


def rules_taken(
    shortcut: RouteShortcut, url_map: Map, host: str, rules: list[Rule], seed: int
) -> set[str]:
    """The rules the shortcut answered for, each answer compared with Werkzeug's."""
    taken = set()
    for path in paths_for(rules, random.Random(seed)):  # noqa: S311 - test inputs, not secrets
        for method in METHODS:
            adapter = url_map.bind(host, path_info=path, default_method=method)
            if compared(shortcut, adapter):
                taken.add(adapter.match(return_rule=True)[0].rule)
    return taken


def test_the_apps_own_routes(app: Flask) -> None:
    url_map = app.url_map
    shortcut = RouteShortcut(url_map)  # type: ignore[arg-type]
    taken = rules_taken(shortcut, url_map, "127.0.0.1:9999", list(url_map.iter_rules()), 26)
    # The sign-in's own routes are among those it takes.
    for rule in ("/authorize", "/token", "/signin/<flow_id>", "/signin/<flow_id>/email"):
        assert rule in taken
    assert "/signin/<flow_id>/code" in taken


def test_a_map_built_to_trip_it() -> None:
    def redirect_target(_adapter: MapAdapter, **_values: str) -> str:
        return "/elsewhere"

    rules = [
        Rule("/a/<x>", endpoint="a_x"),
        Rule("/a/b", endpoint="a_b"),  # static beside an argument: Werkzeug prefers it
        Rule("/<y>/c", endpoint="y_c"),  # overlaps /a/<x> on /a/c
        Rule("/p/<path:rest>", endpoint="p"),
        Rule("/p/q", endpoint="p_q"),  # under a path converter
        Rule("/n/<int:n>", endpoint="n"),
        Rule("/d/<x>", endpoint="d", defaults={"k": "v"}),
        Rule("/r/<x>", endpoint="r", redirect_to="/a/<x>"),
        Rule("/f/<x>", endpoint="f", redirect_to=redirect_target),
        Rule("/two/<x>", endpoint="two"),
        Rule("/two/<x>/more", endpoint="two"),  # a second rule of the same endpoint
        Rule("/s/<x>/", endpoint="s"),  # trailing slash: redirects without it
        Rule("/sub/<x>", endpoint="sub", subdomain="api"),
        Rule("/ws/<x>", endpoint="ws", websocket=True),
        Rule("/m/<string(minlength=3):x>", endpoint="m"),
        Rule("/g/<x>", endpoint="g", methods=["GET"]),
        Rule("/g/<x>", endpoint="g_post", methods=["POST"]),
        Rule("/any/<x>", endpoint="any"),  # no methods: any method (left to Werkzeug)
        Rule("/plain/<x>/end", endpoint="plain", methods=["GET"]),
        Rule("/plain2/<x>/<z>", endpoint="plain2", methods=["GET", "POST"]),
        Rule("/", endpoint="root"),
        Rule("/b-<x>.css", endpoint="odd"),
    ]
    url_map = CountedMap(rules)
    shortcut = RouteShortcut(url_map)
    taken = rules_taken(shortcut, url_map, "example.test", rules, 27)
    assert taken == {"/plain/<x>/end", "/plain2/<x>/<z>"}


@pytest.mark.parametrize("host_matching", [False, True])
def test_a_rule_added_later_is_seen(host_matching: bool) -> None:
    host = "h" if host_matching else None
    url_map = CountedMap(
        [Rule("/a/<x>", endpoint="a", methods=["GET"], host=host)], host_matching=host_matching
    )
    shortcut = RouteShortcut(url_map)
    adapter = url_map.bind("h", path_info="/a/b", default_method="GET")
    assert shortcut.match(adapter) == (None if host_matching else adapter.match(return_rule=True))
    url_map.add(Rule("/a/b", endpoint="b", host=host))
    assert shortcut.match(adapter) is None
    assert adapter.match(return_rule=True)[0].endpoint == "b"


def test_another_map_or_a_websocket_or_a_subdomain_is_left_to_werkzeug() -> None:
    url_map = CountedMap([Rule("/a/<x>", endpoint="a", methods=["GET"])])
    shortcut = RouteShortcut(url_map)
    assert shortcut.match(url_map.bind("h", path_info="/a/b")) is not None
    other = CountedMap([Rule("/a/<x>", endpoint="a", methods=["GET"])])
    assert shortcut.match(other.bind("h", path_info="/a/b")) is None
    assert shortcut.match(url_map.bind("h", path_info="/a/b", url_scheme="ws")) is None
    assert shortcut.match(url_map.bind("h", path_info="/a/b", subdomain="api")) is None


def test_the_served_app_routes_through_it(app: Flask) -> None:
    answer = app.test_client().get("/signin/flow_unknown", base_url=ISSUER)
    assert answer.status_code in (400, 404)  # the view's own answer, not a routing 404
    missing = app.test_client().get("/signin/flow_unknown/", base_url=ISSUER)
    assert missing.status_code == 404
    wrong = app.test_client().put("/signin/flow_unknown/email", base_url=ISSUER)
    assert wrong.status_code == 405
