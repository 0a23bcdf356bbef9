"""The end-session endpoint (RP-Initiated Logout 1.0) and its pages: confirm, signed out.

Translates HTTP to logout.py and back; the decisions are made there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from oidc_link.config import ClientSettings, first_supported, supported_locale
from oidc_link.logout import EndSessionRequest, LogoutConfirmationError, LogoutRequestError
from oidc_link.web.browser import (
    bind_browser,
    browser_id,
    browser_id_or_new,
    clear_session_cookie,
    session_secret,
)
from oidc_link.web.context import services
from oidc_link.web.errors import page_for
from oidc_link.web.languages import use_language

log = logging.getLogger(__name__)

# RP-Initiated Logout 1.0 §2.
END_SESSION_PARAMETERS = (
    "id_token_hint",
    "logout_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
)
# The two buttons of the confirmation page.
SIGN_OUT = "sign_out"
STAY = "stay"

logout_pages = Blueprint("logout", __name__)


def _secure() -> bool:
    return services().settings.secure_cookies


@logout_pages.route("/logout", methods=["GET", "POST"])
def end_session() -> Response | tuple[str, int]:
    """§2: GET with query parameters, or POST with form parameters."""
    parameters = request.args if request.method == "GET" else request.form
    # §2: ui_locales picks the pages' language, as at /authorize.
    use_language(first_supported(parameters.get("ui_locales")))
    logout = services().logout
    try:
        asked = logout.check(parameters.to_dict(flat=True))
    except LogoutRequestError as error:
        log.info("Refused logout request without redirect: %s", error)
        return page_for(error).response()
    sessions = services().sessions
    secret = session_secret()
    if secret is None and request.method == "POST":
        # A relying party's cross-site form POST does not carry our SameSite=Lax session
        # cookie; the same request as a top-level GET does. Ask again, as a GET.
        return redirect(url_for("logout.end_session", **_known(parameters)), 303)
    session = sessions.find(secret)
    if session is None or secret is None:
        # Nothing to end: the browser is already signed out.
        return _signed_out(asked, ended=False)
    if logout.is_from_session(asked, session):
        logout.end(secret, session)
        return _signed_out(asked)
    browser = browser_id_or_new()
    pending = logout.ask(asked, browser)
    page = render_template(
        "logout_confirm.html",
        pending=pending,
        client_name=asked.client.display_name if asked.client else None,
        email=session.identity.email,
    )
    response = make_response(page, 200)
    bind_browser(response, browser, secure=_secure())
    return response


@logout_pages.post("/logout/<logout_id>")
def confirm(logout_id: str) -> Response | tuple[str, int]:
    # The confirmation page's language, which its form carries (logout_confirm.html).
    use_language(supported_locale(request.form.get("locale", "")))
    try:
        asked = services().logout.answer(
            logout_id, browser_id(), request.form.get("csrf_token", "")
        )
    except LogoutConfirmationError as error:
        return page_for(error).response()
    if request.form.get("choice") != SIGN_OUT:
        # "Stay signed in": the session stays and the RP is not told anything. We do not
        # redirect to post_logout_redirect_uri, which means "the user was logged out"
        # (RP-Initiated Logout 1.0 §3); the page offers the way back instead.
        back_url, site = _home_of(asked.client)
        page = render_template("logged_out.html", signed_out=False, back_url=back_url, site=site)
        return make_response(page, 200)
    secret = session_secret()
    session = services().sessions.find(secret)
    if session is not None and secret is not None:
        services().logout.end(secret, session)
    return _signed_out(asked)


def _signed_out(asked: EndSessionRequest, *, ended: bool = True) -> Response:
    """§3: 303 to the post-logout redirect URI with ``state``, or our own signed-out page."""
    location = asked.redirect_location
    if location is not None:
        response = redirect(location, 303)
    else:
        back_url, site = _home_of(asked.client)
        page = render_template(
            "logged_out.html", signed_out=True, ended=ended, back_url=back_url, site=site
        )
        response = make_response(page, 200)
    clear_session_cookie(response, secure=_secure())
    return response


def _known(parameters: Mapping[str, str]) -> dict[str, str]:
    return {name: parameters[name] for name in END_SESSION_PARAMETERS if parameters.get(name)}


def _home_of(client: ClientSettings | None) -> tuple[str | None, str | None]:
    """A known client's name and home page (the origin of a registered URI)."""
    if client is None:
        return None, None
    uris = client.post_logout_redirect_uris or client.redirect_uris
    if not uris:
        return None, client.display_name
    parts = urlsplit(uris[0])
    return f"{parts.scheme}://{parts.netloc}/", client.display_name
