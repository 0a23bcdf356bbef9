"""Security headers shared by every answer and page, and the hook step that adds them.

A header a view set itself is kept (``answers.py``'s form_post policy, the public cache of
discovery and the JWKS); every other answer gets the defaults.
"""

from __future__ import annotations

from werkzeug.datastructures import Headers

# Pages may load our own stylesheet and images and nothing else (DESIGN.md §7.9).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# On every answer, unless the view chose otherwise: (name, its lower case, value).
ANSWER_HEADERS = (
    ("X-Content-Type-Options", "x-content-type-options", "nosniff"),
    ("Referrer-Policy", "referrer-policy", "no-referrer"),
)
# On HTML pages as well: no script or style from elsewhere, never inside a frame.
PAGE_HEADERS = (
    ("Content-Security-Policy", "content-security-policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "x-frame-options", "DENY"),
)
# Answers hold codes, flows and personal data: no cache keeps one unless the view says so.
NO_STORE = ("Cache-Control", "cache-control", "no-store")
# With an https issuer (RFC 6797): browsers go on using https for two years, so a network
# attacker cannot strip it from a later visit. Without includeSubDomains: the issuer's
# parent domain holds the operator's other sites, which this must not bind to https.
STRICT_TRANSPORT_SECURITY = (
    "Strict-Transport-Security",
    "strict-transport-security",
    "max-age=63072000",
)


def is_https_issuer(issuer: str) -> bool:
    """Whether pages go out over https: HSTS and ``__Host-`` cookies only make sense then
    (the development issuer on loopback is plain http)."""
    return issuer.startswith("https:")


# Each combination's defaults, in order, built once rather than concatenated per answer.
_DEFAULTS = {
    (page, cacheable, https): (
        ANSWER_HEADERS
        + (PAGE_HEADERS if page else ())
        + (() if cacheable else (NO_STORE,))
        + ((STRICT_TRANSPORT_SECURITY,) if https else ())
    )
    for page in (False, True)
    for cacheable in (False, True)
    for https in (False, True)
}


# What a missing default appends: the (name, value) pairs in order, and their lower-case
# names, to append them all at once when the view set none of them.
_APPENDED = {
    key: (
        tuple((name, value) for name, _, value in defaults),
        frozenset(lowered for _, lowered, _ in defaults),
    )
    for key, defaults in _DEFAULTS.items()
}
# Werkzeug's Headers.add refuses a value with a line break; the defaults have none, so
# they are appended to the list as they are (checked here, once).
assert not any("\r" in v or "\n" in v for d in _DEFAULTS.values() for _, _, v in d)


def add_security_headers(
    headers: Headers, request_id: str, *, page: bool, cacheable: bool, https: bool
) -> None:
    """``Request-Id`` (replacing any), then each default the view did not set: the page
    headers when ``page``, ``Cache-Control: no-store`` unless ``cacheable``, and
    ``Strict-Transport-Security`` when the issuer is ``https``.

    The names present are gathered in one pass over the headers; ``Request-Id`` and each
    missing default are then appended without another look through the list (what
    ``Headers.set`` and ``Headers.setdefault`` do per call).
    """
    present = {name.lower() for name, _ in headers}
    _add(headers, present, request_id, (page, cacheable, https))


def add_answer_headers(headers: Headers, request_id: str, *, cacheable: bool, https: bool) -> None:
    """``add_security_headers`` for an answer, ``page`` read from its own Content-Type as
    ``Response.mimetype`` reads it (the first one, up to any ``;``, stripped) in the same
    pass that gathers the names present."""
    present: set[str] = set()
    content_type: str | None = None
    for name, value in headers._list:  # Werkzeug's own list, not through Headers.__iter__
        lowered = name.lower()
        if lowered == "content-type" and content_type is None:
            content_type = value
        present.add(lowered)
    page = content_type is not None and content_type.split(";")[0].strip() == "text/html"
    _add(headers, present, request_id, (page, cacheable, https))


def _add(
    headers: Headers, present: set[str], request_id: str, kind: tuple[bool, bool, bool]
) -> None:
    if "request-id" in present:
        headers["Request-Id"] = request_id
    else:
        headers.add("Request-Id", request_id)
    pairs, names = _APPENDED[kind]
    items = headers._list
    if names.isdisjoint(present):
        items.extend(pairs)
        return
    for (name, value), (_, lowered, _) in zip(pairs, _DEFAULTS[kind], strict=True):
        if lowered not in present:
            items.append((name, value))
