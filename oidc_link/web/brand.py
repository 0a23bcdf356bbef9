"""A client's brand on its pages (config/brand.py): the headers that let exactly its logo
load, and the stylesheet of an accent colour. The markup is templates/_brand.html's.

The pages' Content-Security-Policy stays ``style-src 'self'``: the accent comes as a
stylesheet from this server, one per configured colour, never as inline style.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, abort

from oidc_link.config.brand import Brand
from oidc_link.web.context import services
from oidc_link.web.headers import CONTENT_SECURITY_POLICY

brand = Blueprint("brand", __name__)

ACCENT_STYLESHEET_PREFIX = "/brand/accent-"
_COLOUR_DIGITS = re.compile(r"^[0-9a-f]{6}$")
# The stylesheet of one colour never changes: the colour is its name.
_ACCENT_CACHE = "public, max-age=86400"
# What a CSP path may hold as is; ";" and "," end a directive or a source (CSP3 §2.3.1).
_CSP_PATH_SAFE = "/-._~!$&()*+=:@%"


def page_headers(shown: Brand) -> dict[str, str]:
    """The headers a page showing ``shown`` sets itself: with a logo, a policy that also
    lets that one image load, and nothing else from its host."""
    if shown.logo_uri is None:
        return {}
    return {"Content-Security-Policy": _policy_with_image(shown.logo_uri)}


def accent_stylesheet_url(script_root: str, shown: Brand) -> str | None:
    if shown.accent_color is None:
        return None
    return f"{script_root}{ACCENT_STYLESHEET_PREFIX}{shown.accent_color[1:]}.css"


@functools.cache
def _policy_with_image(logo_uri: str) -> str:
    """The pages' policy, its img-src widened by the logo's exact address (its path too,
    so another image of the same host still does not load; a query is not matched)."""
    parts = urlsplit(logo_uri)
    source = f"https://{parts.netloc}{quote(parts.path or '/', safe=_CSP_PATH_SAFE)}"
    return CONTENT_SECURITY_POLICY.replace("img-src 'self'", f"img-src 'self' {source}", 1)


@brand.get(ACCENT_STYLESHEET_PREFIX + "<digits>.css")
def accent(digits: str) -> Response:
    """The accent of the clients configured with ``#<digits>``; 404 for any other colour."""
    colour = f"#{digits}"
    configured = {client.brand.accent_color for client in services().settings.clients}
    if not _COLOUR_DIGITS.match(digits) or colour not in configured:
        abort(404)
    response = Response(_stylesheet(colour), mimetype="text/css")
    response.headers["Cache-Control"] = _ACCENT_CACHE
    return response


@functools.cache
def _stylesheet(colour: str) -> str:
    """The accent as static/site.css's custom properties. In a light scheme it is the
    primary button and the links (config/brand.py checked it against those colours); in a
    dark one, where a colour dark enough for light pages would be unreadable, only the
    card's top edge, which carries no text."""
    return (
        f":root {{ --accent-edge: 4px solid {colour}; }}\n"
        "@media not (prefers-color-scheme: dark) {\n"
        f"  :root {{ --primary: {colour}; --primary-hover: color-mix(in srgb, {colour} 80%, "
        f"#000000); --link: {colour}; }}\n"
        "}\n"
    )
