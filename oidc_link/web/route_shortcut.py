"""The plain routes found by their path's segments, before Werkzeug's matcher.

Werkzeug's ``MapAdapter.match`` walks a state machine, one recursive call and one regex
compile-and-match per segment, then checks redirects; ~10 µs for ``/authorize``, ~20 µs
for ``/signin/<flow_id>/email`` on a loaded machine, on every request. Most of the app's
routes are *plain*: static segments and whole-segment ``<name>`` arguments of the default
converter, with no defaults, redirect, alias, subdomain or WebSocket, the only rule of
their endpoint, and no other rule that could match the same path. For such a rule
Werkzeug can only give back that rule and each argument's segment as it is, so a path of
non-empty segments is looked up here by its static segments. Anything else (no plain rule
for the path, a method the rule does not take, an empty segment that Werkzeug would merge
or redirect, host or subdomain matching, a WebSocket) goes to Werkzeug, which answers the
404, 405 or redirect. ``tests/test_route_shortcut.py`` compares both on many paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from werkzeug.routing import Map, MapAdapter, Rule, RuleFactory
from werkzeug.routing.converters import UnicodeConverter

# A static segment as Werkzeug keeps it unchanged; a segment that is one argument, written
# without a converter (the default, UnicodeConverter with minlength 1: "[^/]{1,}").
_STATIC = re.compile(r"[A-Za-z0-9._~-]+")
_ARGUMENT = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
_DEFAULT_REGEX = "[^/]{1,}"

# A segment of a rule: its text if static, None if an argument.
_Segments = tuple[str | None, ...]


class CountedMap(Map):
    """Werkzeug's Map, counting the rules added to it (its own list of them is rebuilt on
    every read), so that the shortcut knows when to look at them again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.additions = 0
        super().__init__(*args, **kwargs)

    def add(self, rulefactory: RuleFactory) -> None:
        super().add(rulefactory)
        self.additions += 1


@dataclass(frozen=True)
class _PlainRoute:
    rule: Rule
    arguments: tuple[tuple[int, str], ...]  # (segment index, argument name)


@dataclass(frozen=True)
class _Shape:
    """The plain routes of one segment count with their arguments at the same indices,
    by their static segments."""

    statics_of: Callable[[list[str]], Hashable]
    routes: dict[Hashable, _PlainRoute]


class RouteShortcut:
    """The plain routes of one ``CountedMap``, rebuilt whenever a rule is added to it."""

    def __init__(self, url_map: CountedMap) -> None:
        self._map = url_map
        self._additions_seen = -1
        # For each segment count, the shapes of the plain routes with that many.
        self._shapes: dict[int, tuple[_Shape, ...]] = {}

    def match(self, adapter: MapAdapter) -> tuple[Rule, dict[str, str]] | None:
        """``adapter.match(return_rule=True)``'s answer for a plain route, or None when
        Werkzeug must be asked."""
        url_map = self._map
        if url_map.additions != self._additions_seen:
            self._build()
        if (
            adapter.map is not url_map
            or url_map.host_matching
            or adapter.subdomain != ""
            or adapter.websocket
        ):
            return None
        path = adapter.path_info
        if not path or path[0] != "/":
            return None
        segments = path[1:].split("/")
        if "" in segments:
            return None  # "//", a trailing slash: Werkzeug merges or redirects
        for shape in self._shapes.get(len(segments), ()):
            route = shape.routes.get(shape.statics_of(segments))
            if route is not None:
                if adapter.default_method.upper() not in route.rule.methods:  # type: ignore[operator]
                    return None
                return route.rule, {name: segments[index] for index, name in route.arguments}
        return None

    def _build(self) -> None:
        url_map = self._map
        additions = url_map.additions
        rules = list(url_map.iter_rules())
        found = [(rule, _segments_of(rule.rule)) for rule in rules]
        # By (segment count, argument positions): the routes, by their static segments.
        shapes: dict[tuple[int, tuple[int, ...]], _Shape] = {}
        for rule, segments in found:
            if segments is None or not _is_plain(url_map, rule):
                continue
            if any(other is not rule and _may_overlap(segments, other) for other in rules):
                continue
            raw = _raw_segments(rule.rule)
            arguments = tuple(
                (index, _ARGUMENT.fullmatch(raw[index]).group(1))  # type: ignore[union-attr]
                for index, part in enumerate(segments)
                if part is None
            )
            shape_key = (len(segments), tuple(index for index, _ in arguments))
            shape = shapes.get(shape_key)
            if shape is None:
                statics = [index for index, part in enumerate(segments) if part is not None]
                shape = shapes[shape_key] = _Shape(_picker(statics), {})
            shape.routes[shape.statics_of(list(segments))] = _PlainRoute(rule, arguments)  # type: ignore[arg-type]
        by_count: dict[int, list[_Shape]] = {}
        for (count, _), shape in shapes.items():
            by_count.setdefault(count, []).append(shape)
        self._shapes = {count: tuple(listed) for count, listed in by_count.items()}
        self._additions_seen = additions


def _picker(indices: list[int]) -> Callable[[list[str]], Hashable]:
    """The segments at these indices, as a key (itemgetter: one call, no loop)."""
    if not indices:
        return _no_segments
    return itemgetter(*indices)


def _no_segments(_segments: list[str]) -> Hashable:
    return ()


def _raw_segments(text: str) -> list[str]:
    return text[1:].split("/")


def _segments_of(text: str) -> _Segments | None:
    """A rule's segments if each is static or a whole default argument, else None."""
    if not text.startswith("/"):
        return None
    segments: list[str | None] = []
    for part in _raw_segments(text):
        if _STATIC.fullmatch(part):
            segments.append(part)
        elif _ARGUMENT.fullmatch(part):
            segments.append(None)
        else:
            return None
    return tuple(segments)


def _is_plain(url_map: Map, rule: Rule) -> bool:
    """Whether Werkzeug could only answer this rule, with its arguments as they are."""
    return (
        rule.methods is not None
        and not rule.websocket
        and not rule.defaults
        and rule.redirect_to is None
        and not rule.alias
        and not rule.build_only
        and rule.host is None
        and rule.subdomain == ""
        and len(url_map._rules_by_endpoint.get(rule.endpoint, ())) == 1
        and all(
            type(converter) is UnicodeConverter and converter.regex == _DEFAULT_REGEX
            for converter in rule._converters.values()
        )
    )


def _may_overlap(segments: _Segments, other: Rule) -> bool:
    """Whether another rule might match a path the plain one matches, on the safe side:
    a segment of it that is not plain static text may match anything in that segment, and
    from a converter that may span segments (``path``) on, anything at all."""
    if not other.rule.startswith("/"):
        return True
    spanning = not all(converter.part_isolating for converter in other._converters.values())
    theirs = _raw_segments(other.rule)
    if not spanning and len(theirs) != len(segments):
        return False
    for mine, their in zip(segments, theirs, strict=False):
        if _STATIC.fullmatch(their):
            if mine is not None and mine != their:
                return False
        elif spanning and "<" in their:
            return True
    return True
