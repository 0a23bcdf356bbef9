"""The browser-binding cookie: a random id that ties a sign-in flow to the browser that began it."""

from __future__ import annotations

from flask import Response, request

from oidc_link.ids import new_secret

BROWSER_COOKIE = "oidc_link_browser"


def browser_id() -> str | None:
    return request.cookies.get(BROWSER_COOKIE)


def browser_id_or_new() -> str:
    return browser_id() or new_secret(32)


def bind_browser(response: Response, value: str, *, secure: bool) -> None:
    # Lax, so the cookie comes along when the RP sends the user here with a top-level GET.
    response.set_cookie(
        BROWSER_COOKIE, value, httponly=True, secure=secure, samesite="Lax", path="/"
    )
