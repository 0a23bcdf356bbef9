"""Hosted form posts come only from our own pages: one check, before any view, for the
sign-in, consent, account-page and logout-confirmation forms. Each form's CSRF token
still applies; this adds what the browser itself says about where the form was.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Request

from oidc_link.web.errors import error_page
from oidc_link.web.languages import page_language

log = logging.getLogger(__name__)

# Blueprints whose every POST is one of our HTML forms. Not /authorize (an RP may POST an
# authorization request, OIDC Core §3.1.2.1), not /logout itself (RP-Initiated Logout 1.0
# §2 lets an RP's page POST there), not /token, /par, /revoke, /introspect or /v1
# (servers, which send no Origin).
HOSTED_FORM_BLUEPRINTS = frozenset({"pages", "account_pages"})
# Single hosted forms in blueprints that also take requests from other sites.
HOSTED_FORM_ENDPOINTS = frozenset({"logout.confirm"})
# Fetch Metadata (W3C): the form was on a page of another origin. "same-site" is a sibling
# host (another subdomain), which is not us either; "same-origin", "none" and an absent
# header (older browsers) pass.
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL or an ``Origin`` value, as RFC 6454 compares them;
    None when it has no usable scheme and host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def foreign_post_reason(
    origin: str | None, fetch_site: str | None, own: tuple[str, str, int] | None
) -> str | None:
    """Why a form post is not from our own pages, or None when nothing says so.

    ``Origin: null`` proves nothing either way: browsers send it for our own forms too,
    since every page of ours has ``Referrer-Policy: no-referrer`` (Fetch, "serializing a
    request origin"). Then only ``Sec-Fetch-Site`` can tell.
    """
    if fetch_site is not None and fetch_site.strip().lower() in FOREIGN_FETCH_SITES:
        return "sec_fetch_site"
    if origin is not None and origin.strip() != "null" and origin_of(origin) != own:
        return "origin"
    return None


def refuse_foreign_form_post(
    incoming: Request, own: tuple[str, str, int] | None
) -> tuple[str, int] | None:
    """A 403 page for a hosted form post that a browser says came from elsewhere (``own``
    is the issuer's ``origin_of``); None for any other request.

    Called by the request frame (web/request_frame.py) after the request id is assigned,
    so the page can quote it.
    """
    if incoming.method != "POST" or not (
        incoming.blueprint in HOSTED_FORM_BLUEPRINTS or incoming.endpoint in HOSTED_FORM_ENDPOINTS
    ):
        return None
    headers = incoming.headers
    reason = foreign_post_reason(headers.get("Origin"), headers.get("Sec-Fetch-Site"), own)
    if reason is None:
        return None
    log.warning(
        "Refused a hosted form post from another site (%s)",
        reason,
        extra={"event": "form.foreign_post", "reason": reason, "endpoint": incoming.endpoint},
    )
    language = page_language()
    return error_page(
        language.gettext("This form came from another website"),
        language.gettext(
            "For your safety we accept this form only from our own pages, and your "
            "browser says it was sent from another website. Nothing was changed. Go back "
            "to the site you came from and start again from there."
        ),
        403,
    )
