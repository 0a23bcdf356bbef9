"""How an authorization response reaches the relying party: a redirect with the answer in
the query, or a form the browser posts to it (OAuth 2.0 Form Post Response Mode)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from flask import Response, make_response, render_template
from flask.globals import _cv_app
from werkzeug.utils import redirect as werkzeug_redirect

from oidc_link.web.headers import CONTENT_SECURITY_POLICY

# The form-post page may run our one script, which submits the form for the user.
FORM_POST_POLICY = CONTENT_SECURITY_POLICY + "; script-src 'self'"


def authorization_answer(
    location: str, redirect_uri: str | None, response_mode: str | None, status: int = 302
) -> Response:
    """Deliver ``location`` (the redirect Authlib built) the way the RP asked for it."""
    if response_mode != "form_post" or not redirect_uri or not location.startswith(redirect_uri):
        return redirect_to(location, status)
    # The redirect URI's own query (if registered with one) stays in the action; the
    # answer's parameters are what Authlib appended after it.
    own = len(parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True))
    fields = parse_qsl(urlsplit(location).query, keep_blank_values=True)[own:]
    page = render_template("form_post.html", action=redirect_uri, fields=fields)
    response = make_response(page, 200)
    response.headers["Content-Security-Policy"] = FORM_POST_POLICY
    return response


def redirect_to(location: str, status: int = 302) -> Response:
    """``flask.redirect(location, status)``: what it comes down to, Werkzeug's redirect made
    with the app's response class, without asking the app's proxy twice for the app."""
    return werkzeug_redirect(location, status, _cv_app.get().app.response_class)
