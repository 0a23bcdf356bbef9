"""Our cookies: the browser binding (ties a flow to the browser that began it), the SSO
session (lets that browser sign in again without an SMS), and which flow the browser's last
/authorize request started (so that reloading that URL shows the flow again).

With an https issuer the two ``Path=/`` cookies are named ``__Host-...``: a browser takes
such a cookie only from this very host, Secure and without Domain, so a sibling subdomain
cannot plant one. On plain http (the loopback development issuer) browsers refuse that
prefix, so the plain names stay.
"""

from __future__ import annotations

import re

from flask import Request, Response, after_this_request, request

from oidc_link.ids import new_secret, same
from oidc_link.sessions import began_under_host_cookie
from oidc_link.web.context import services
from oidc_link.web.cookie_header import cookie_value

BROWSER_COOKIE = "oidc_link_browser"
SESSION_COOKIE = "oidc_link_session"
AUTHORIZE_COOKIE = "oidc_link_authorize"
AUTHORIZE_PATH = "/authorize"
# RFC 6265bis §4.1.3.2: Secure, Path=/ and no Domain, or the browser drops the cookie.
HOST_PREFIX = "__Host-"
# A value Werkzeug's dump_cookie writes as it is (a subset of its unquoted characters: our
# ids, secrets and fingerprints), short enough that it never warns about the size.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,256}")
# What dump_cookie writes after such a value for a cookie of the browser session (no
# Max-Age, no Expires), HttpOnly and Lax, by (secure, path).
_SESSION_COOKIE_ATTRIBUTES = {
    (secure, path): ("; Secure" if secure else "") + f"; HttpOnly; Path={path}; SameSite=Lax"
    for secure in (False, True)
    for path in ("/", AUTHORIZE_PATH)
}


def cookie_name(name: str, *, secure: bool) -> str:
    """A ``Path=/`` cookie's name: ``__Host-`` prefixed when the issuer is https."""
    return HOST_PREFIX + name if secure else name


def _secure() -> bool:
    return services().settings.secure_cookies


def cookie_of(http: Request, name: str) -> str | None:
    """``http.cookies.get(name)``, without what Werkzeug does first on every request: walk
    each key of the WSGI environ to find the Cookie header (EnvironHeaders.getlist), then
    parse every cookie in it into a MultiDict. The header is the environ's, as Werkzeug
    reads it, and it is read as Werkzeug parses it only when the name is in it: a name
    parsed out of a header is always a piece of that header (cookie_header.py)."""
    header = http.environ.get("HTTP_COOKIE")
    if not header or name not in header:
        return None
    return cookie_value(header, name)


def browser_id() -> str | None:
    return browser_id_of(request._get_current_object(), secure=_secure())  # type: ignore[attr-defined]


def browser_id_of(http: Request, *, secure: bool) -> str | None:
    """``browser_id()`` for a view that holds the request and the cookie setting already."""
    # Never the plain name on https: that is the cookie a sibling subdomain could plant. A
    # sign-in begun before the rename starts again (its flow lives minutes).
    return cookie_of(http, cookie_name(BROWSER_COOKIE, secure=secure))


def browser_id_or_new() -> str:
    return browser_id() or new_secret(32)


def bind_browser(response: Response, value: str, *, secure: bool) -> None:
    # Lax, so the cookie comes along when the RP sends the user here with a top-level GET.
    _set_browser_session_cookie(
        response, cookie_name(BROWSER_COOKIE, secure=secure), value, secure=secure, path="/"
    )


def _set_browser_session_cookie(
    response: Response, name: str, value: str, *, secure: bool, path: str
) -> None:
    """``response.set_cookie(name, value, httponly=True, secure=secure, samesite="Lax",
    path=path)``, the header written out for a plain value: byte for byte what Werkzeug's
    dump_cookie writes, without its quoting of the path and its walk over every attribute
    (two such cookies on every new sign-in). Any other value goes through Werkzeug."""
    if not _PLAIN_VALUE.fullmatch(value):
        response.set_cookie(name, value, httponly=True, secure=secure, samesite="Lax", path=path)
        return
    attributes = _SESSION_COOKIE_ATTRIBUTES[secure, path]
    response.headers.add("Set-Cookie", name + "=" + value + attributes)


def session_secret() -> str | None:
    """The SSO session cookie's value. On https, a session from before the rename may still
    come under the plain name: it is used, and moved to the ``__Host-`` name (see
    ``_moved_session``), so nobody signs in again because of the rename."""
    http: Request = request._get_current_object()  # type: ignore[attr-defined]
    if not _secure():
        return cookie_of(http, SESSION_COOKIE)
    secret = cookie_of(http, HOST_PREFIX + SESSION_COOKIE)
    if secret:
        return secret
    legacy = cookie_of(http, SESSION_COOKIE)
    return _moved_session(legacy) if legacy else None


def _moved_session(legacy: str) -> str | None:
    """The plain-named cookie's value if it names a session started before the rename (and
    the answer then sets it under the new name); None otherwise. Either way the answer
    deletes the plain one.

    A session started since (its value marked, ``began_under_host_cookie``) only ever had
    the ``__Host-`` name: under the plain name it can only be a plant, like another's
    session set from a sibling subdomain to sign this browser in as them. Older sessions end
    within ``session_absolute``, after which no plain cookie is taken at all.
    """
    sessions = services().sessions
    moved = (
        not began_under_host_cookie(legacy) and services().store.sessions.load(legacy) is not None
    )

    @after_this_request
    def move(response: Response) -> Response:
        already = {header.partition("=")[0] for header in response.headers.getlist("Set-Cookie")}
        # A view that set or cleared the session cookie itself (a new sign-in, a logout)
        # has the last word on the new name.
        if moved and HOST_PREFIX + SESSION_COOKIE not in already:
            set_session_cookie(response, legacy, secure=True, max_age=sessions.cookie_lifetime)
        if SESSION_COOKIE not in already:
            response.delete_cookie(
                SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Lax"
            )
        return response

    return legacy if moved else None


def set_session_cookie(response: Response, secret: str, *, secure: bool, max_age: int) -> None:
    # HttpOnly and Lax: sent on the RP's top-level redirect to /authorize, never to scripts.
    response.set_cookie(
        cookie_name(SESSION_COOKIE, secure=secure),
        secret,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="Lax",
        path="/",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    """Logout: the browser forgets the session (Redis has already dropped it), under
    either name."""
    response.delete_cookie(
        cookie_name(SESSION_COOKIE, secure=secure),
        path="/",
        secure=secure,
        httponly=True,
        samesite="Lax",
    )
    if secure:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")


def remember_authorize_flow(
    response: Response, flow_id: str, fingerprint: str, *, secure: bool
) -> None:
    """The flow this /authorize request started, under the request's fingerprint.

    Only /authorize receives it (its path), and, like the binding cookie, it lasts as long
    as the browser session: the two are read together. It names a flow, which is no secret
    (flow ids are in the pages' URLs); the binding cookie is what lets a browser use one.
    Not at ``Path=/``, so it cannot take the ``__Host-`` name; it needs no protection of its
    own, since without the binding cookie the flow it names is of no use.
    """
    _set_browser_session_cookie(
        response, AUTHORIZE_COOKIE, f"{flow_id}.{fingerprint}", secure=secure, path=AUTHORIZE_PATH
    )


def authorize_flow(fingerprint: str) -> str | None:
    """The flow remembered for the /authorize request with this fingerprint, if any."""
    http: Request = request._get_current_object()  # type: ignore[attr-defined]
    flow_id, _, remembered = (cookie_of(http, AUTHORIZE_COOKIE) or "").rpartition(".")
    if not flow_id or not same(remembered, fingerprint):
        return None
    return flow_id
