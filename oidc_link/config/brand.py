"""A client's brand on the hosted pages: its logo, its sites' addresses (the names of OpenID
Connect Dynamic Client Registration 1.0 §2) and an accent colour whose contrast is checked
here, when the configuration is read. Settings only; templates/_brand.html shows them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oidc_link.config.reader import Reader

BRAND_FIELDS = ("logo_uri", "client_uri", "policy_uri", "tos_uri", "accent_color")
_ADDRESS_FIELDS = ("logo_uri", "client_uri", "policy_uri", "tos_uri")
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Printable ASCII without space, quotes or angle brackets: an address written already
# percent-encoded, which goes into a page and (the logo's) a Content-Security-Policy as is.
_PLAIN_URL = re.compile(r"^[!#-&(-;=?-~]+$")

# The light colours the accent sits on or under, as static/site.css's :root names them
# (tests/test_brand_config.py reads them back from there): it colours the primary button,
# whose label is --primary-text, and links on the card, which lies on the page's --bg.
PAGE_BACKGROUND = "#f3f4f6"  # --bg
CARD_BACKGROUND = "#ffffff"  # --card
BUTTON_TEXT = "#ffffff"  # --primary-text
# WCAG 2.x success criterion 1.4.3 (AA): normal text needs 4.5:1.
AA_TEXT_CONTRAST = 4.5


@dataclass(frozen=True)
class Brand:
    """What a client shows of itself on the sign-in and consent pages; all optional.

    ``accent_color`` is ``#rrggbb`` in lower case, and passed the contrast check."""

    logo_uri: str | None = None
    client_uri: str | None = None
    policy_uri: str | None = None
    tos_uri: str | None = None
    accent_color: str | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in BRAND_FIELDS)


def read_brand(reader: Reader, table: Mapping[str, Any], name: str, client_id: str | None) -> Brand:
    """The brand fields of one ``[[clients]]`` table; each problem names the field and the
    client, so an operator with many clients finds the one to fix."""
    whose = f"(client {client_id!r}) " if client_id else ""
    addresses: dict[str, str | None] = {}
    for key in _ADDRESS_FIELDS:
        value = reader.text(table, key, f"{name}.{key}", required=False)
        problem = address_problem(value) if value is not None else None
        if problem:
            reader.problem(f"{name}.{key}", f"{whose}{problem}")
            value = None
        addresses[key] = value
    accent = reader.text(table, "accent_color", f"{name}.accent_color", required=False)
    if accent is not None:
        problem = accent_problem(accent)
        if problem:
            reader.problem(f"{name}.accent_color", f"{whose}{problem}")
            accent = None
    return Brand(**addresses, accent_color=accent.lower() if accent else None)


def address_problem(url: str) -> str | None:
    """Why ``url`` cannot be shown on a page, or None: an https address with a host, no
    user name or password in it, and written in plain (percent-encoded) ASCII."""
    if not _PLAIN_URL.match(url):
        return (
            f"{url!r} must be written in plain ASCII without spaces, quotes or angle brackets "
            "(percent-encode the rest)"
        )
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return f"{url!r} must be an https URL"
    if "@" in parts.netloc:
        # A page must never hand a browser credentials, nor disguise the host after an @.
        return f"{url!r} must not contain a user name or password"
    return None


def accent_problem(colour: str) -> str | None:
    """Why ``colour`` cannot be the accent, or None: it must be ``#RRGGBB`` and reach AA
    contrast with the light backgrounds it colours text on and with the button's label."""
    if not _HEX_COLOUR.match(colour):
        return f"{colour!r} must be a colour written #RRGGBB"
    against = {
        "the page background": PAGE_BACKGROUND,
        "the card": CARD_BACKGROUND,
        "the button text": BUTTON_TEXT,
    }
    for where, other in against.items():
        ratio = contrast_ratio(colour, other)
        if ratio < AA_TEXT_CONTRAST:
            return (
                f"{colour} has a contrast of {ratio:.2f}:1 against {where} ({other}); WCAG AA "
                f"needs {AA_TEXT_CONTRAST}:1: choose a darker colour"
            )
    return None


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio of two ``#rrggbb`` colours: (L1 + 0.05) / (L2 + 0.05), L1
    the lighter one's relative luminance; from 1 (the same) to 21 (black on white)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of ``#rrggbb``: each sRGB channel linearised, then
    weighted by how bright the eye finds it."""
    red, green, blue = (int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5))
    return 0.2126 * _linear(red) + 0.7152 * _linear(green) + 0.0722 * _linear(blue)


def _linear(channel: float) -> float:
    # The sRGB transfer function undone (IEC 61966-2-1; WCAG's 0.03928 is the same curve).
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4
