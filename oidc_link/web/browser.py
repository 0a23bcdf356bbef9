"""Our two cookies: the browser binding (ties a flow to the browser that began it) and the
SSO session (lets that browser sign in again without an SMS)."""

from __future__ import annotations

from flask import Response, request

from oidc_link.ids import new_secret

BROWSER_COOKIE = "oidc_link_browser"
SESSION_COOKIE = "oidc_link_session"


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
