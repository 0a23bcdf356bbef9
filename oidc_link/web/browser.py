"""Our cookies: the browser binding (ties a flow to the browser that began it), the SSO
session (lets that browser sign in again without an SMS), and which flow the browser's last
/authorize request started (so that reloading that URL shows the flow again)."""

from __future__ import annotations

from flask import Response, request

from oidc_link.ids import new_secret, same

BROWSER_COOKIE = "oidc_link_browser"
SESSION_COOKIE = "oidc_link_session"
AUTHORIZE_COOKIE = "oidc_link_authorize"
AUTHORIZE_PATH = "/authorize"


def browser_id() -> str | None:
    return request.cookies.get(BROWSER_COOKIE)


def browser_id_or_new() -> str:
    return browser_id() or new_secret(32)


def bind_browser(response: Response, value: str, *, secure: bool) -> None:
    # Lax, so the cookie comes along when the RP sends the user here with a top-level GET.
    response.set_cookie(
        BROWSER_COOKIE, value, httponly=True, secure=secure, samesite="Lax", path="/"
    )


def session_secret() -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def set_session_cookie(response: Response, secret: str, *, secure: bool, max_age: int) -> None:
    # HttpOnly and Lax: sent on the RP's top-level redirect to /authorize, never to scripts.
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=max_age,
        httponly=True,
        secure=secure,
        samesite="Lax",
        path="/",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    """Logout: the browser forgets the session (Redis has already dropped it)."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="Lax")


def remember_authorize_flow(
    response: Response, flow_id: str, fingerprint: str, *, secure: bool
) -> None:
    """The flow this /authorize request started, under the request's fingerprint.

    Only /authorize receives it (its path), and, like the binding cookie, it lasts as long
    as the browser session: the two are read together. It names a flow, which is no secret
    (flow ids are in the pages' URLs); the binding cookie is what lets a browser use one.
    """
    response.set_cookie(
        AUTHORIZE_COOKIE,
        f"{flow_id}.{fingerprint}",
        httponly=True,
        secure=secure,
        samesite="Lax",
        path=AUTHORIZE_PATH,
    )


def authorize_flow(fingerprint: str) -> str | None:
    """The flow remembered for the /authorize request with this fingerprint, if any."""
    flow_id, _, remembered = request.cookies.get(AUTHORIZE_COOKIE, "").rpartition(".")
    if not flow_id or not same(remembered, fingerprint):
        return None
    return flow_id
