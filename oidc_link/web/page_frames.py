"""The sign-in's everyday pages (the email and code steps without a notice) rendered once
per kind with holes where each request's own values go, then only filled in: the bytes the
template renders, for a fraction of its cost (each page is on every sign-in).

A frame is trusted only once it has reproduced the full render in two requests: a template
that reads a value it was not given a hole for, tests a value rather than showing it, or a
page global that changes per request, makes its frame fail that check, and such a page is
rendered in full for the life of the process (with a warning, once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Mapping
from types import SimpleNamespace

from flask import Flask
from markupsafe import escape

from oidc_link.models import Flow

log = logging.getLogger(__name__)

FRAMES_EXTENSION = "oidc_link.page_frames"
# What the framed pages show of their flow: each a hole.
FLOW_FIELDS = ("csrf_token", "email", "redacted_phone")
# Each field's hole: its name among the page's values, and the field.
_FLOW_HOLES = tuple(("flow_" + field, field) for field in FLOW_FIELDS)
# Private-use characters around a hole's name: no template, catalogue or escaping writes
# them, so the render shows where each value went, and only there.
_HOLE = "\ue000{}\ue001"
_HOLES = re.compile("\ue000(\\w+)\ue001")
# What escaping changes: a text without any is written as it is (no Markup built for it).
_ESCAPED = re.compile("[&<>\"']")
# Full renders a frame must reproduce, each in a request of its own, before it is used.
_CHECKS = 2
# Kinds of page one process keeps frames for: templates x languages x clients x the
# values left empty. Past this, a new kind is rendered in full.
_MOST_FRAMES = 1024

# render(flow=..., **own): the page's template rendered with the rest of its context.
Render = Callable[..., str]


class Frame:
    """One kind of page as text, split where its holes were."""

    def __init__(self, rendered: str) -> None:
        # The texts at even places, each hole's name at odd ones (re.split's own layout).
        self._parts: list[str] = _HOLES.split(rendered)
        self._holes = self._parts[1::2]
        self._names = frozenset(self._holes)
        self._checked = 0
        self._broken = False

    @property
    def trusted(self) -> bool:
        return self._checked >= _CHECKS and not self._broken

    def fill(self, values: Mapping[str, object]) -> str:
        """The page with ``values`` in its holes, escaped as the template escapes output.

        Each value escaped once (a hole may be shown several times), then put in its holes
        by one slice assignment into a copy of the frame's parts: one join, and no Python
        loop over the holes."""
        escaped: dict[str, object] = {}
        for name in self._names:
            value = values[name]
            plain = type(value) is str and _ESCAPED.search(value) is None
            escaped[name] = value if plain else escape(value)
        parts = self._parts.copy()
        parts[1::2] = [escaped[name] for name in self._holes]
        return "".join(parts)

    def check(self, page: str, values: Mapping[str, object], key: Hashable) -> None:
        """Compare with ``page``, the full render with ``values``; a difference ends the
        frame's use for good."""
        if self._broken:
            return
        if set(self._holes) <= set(values) and self.fill(values) == page:
            self._checked += 1
            return
        self._broken = True
        log.warning("The page frame %r differs from its template's render; rendered in full", key)


class PageFrames:
    """An app's frames, by the kind of page and which of its values are empty."""

    def __init__(self) -> None:
        self._frames: dict[Hashable, Frame] = {}

    def page(self, key: Hashable, flow: Flow, own: Mapping[str, object], render: Render) -> str:
        """What ``render(flow=flow, **own)`` renders. ``key`` names everything else the
        page shows (its template, its language, the client, the mount point); ``own`` is
        the request's values besides the flow's FLOW_FIELDS."""
        values = dict(own)
        for hole, field in _FLOW_HOLES:
            values[hole] = getattr(flow, field)
        # An empty value is no hole: a template may test it (``or ''``, ``if``).
        kind = (key, tuple([name for name, value in values.items() if not value]))
        frame = self._frames.get(kind)
        if frame is not None and frame.trusted:
            return frame.fill(values)
        page = render(flow=flow, **own)
        if frame is None:
            if len(self._frames) >= _MOST_FRAMES:
                return page
            frame = self._frames.setdefault(kind, Frame(_render_holes(values, own, render)))
        frame.check(page, values, kind)
        return page

    def trusted(self) -> int:
        """How many kinds of page are filled in from their frames now."""
        return sum(frame.trusted for frame in list(self._frames.values()))


def _render_holes(values: Mapping[str, object], own: Mapping[str, object], render: Render) -> str:
    """The page rendered with a hole for each value that is not empty, and the flow a
    stand-in holding only FLOW_FIELDS (any other field read renders nothing: no match)."""
    holes = {name: _HOLE.format(name) if value else value for name, value in values.items()}
    stand_in = SimpleNamespace(**{field: holes["flow_" + field] for field in FLOW_FIELDS})
    return render(flow=stand_in, **{name: holes[name] for name in own})


def page_frames(app: Flask) -> PageFrames:
    """The app's frames, made on first use."""
    frames: PageFrames | None = app.extensions.get(FRAMES_EXTENSION)
    if frames is None:
        frames = app.extensions.setdefault(FRAMES_EXTENSION, PageFrames())
    return frames
