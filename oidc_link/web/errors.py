"""One error mapping per surface: ``page_for`` (hosted pages), ``protocol_error`` (OAuth
JSON). /v1's is web/api/errors.py; redirects to a trusted redirect_uri, the Provider's
(``_consent_grant``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Response, make_response, render_template, url_for
from werkzeug.exceptions import HTTPException

from oidc_link.errors import (
    DomainError,
    FlowBrowserMismatchError,
    FlowBusyError,
    FlowClientChangedError,
    FlowError,
    FlowExpiredError,
    FlowFinishedError,
    FlowFormExpiredError,
    FlowNotFoundError,
    FlowStepError,
    LogoutError,
    PlatformError,
    StoreUnavailableError,
)
from oidc_link.logout import LogoutConfirmationError
from oidc_link.oauth.messages import (
    AuthorizationPageError,
    InvalidAccessTokenError,
    ProtocolResponse,
)
from oidc_link.web.context import services
from oidc_link.web.languages import page_language, translatable

HTTP_MESSAGES = {
    404: translatable(
        "There is nothing at this address. Go back to the site you came from and start again."
    ),
    405: translatable(
        "This page cannot be used that way. Go back to the site you came from and start again."
    ),
}
# Werkzeug's names of the statuses a page can meet, for the page's language.
HTTP_TITLES = {
    400: translatable("Bad Request"),
    403: translatable("Forbidden"),
    404: translatable("Not Found"),
    405: translatable("Method Not Allowed"),
    413: translatable("Request Entity Too Large"),
    414: translatable("Request URI Too Long"),
    431: translatable("Request Header Fields Too Large"),
}
# RFC 9110 §10.2.3: how long a client should wait before repeating a request that met a
# Redis outage; long enough for a restart or failover to finish, short for a person.
OUTAGE_RETRY_AFTER = 5
OUTAGE_MESSAGE = "The service is briefly unavailable. Please try again in a few seconds."
# The page of each way a flow can stop, by the error's code: (status, title, message). The
# messages are errors.py's, which logs and /v1 keep in English (DESIGN.md §6: pages pick
# their words by code; tests/test_translations.py checks the two agree).
FLOW_PAGES: dict[str, tuple[int, str, str]] = {
    FlowNotFoundError.code: (
        404,
        translatable("We can't find this sign-in"),
        translatable(
            "We can't find this sign-in. Go back to the site you came from and start again."
        ),
    ),
    FlowExpiredError.code: (
        410,
        translatable("This sign-in has expired"),
        translatable("This sign-in has expired. Go back to the site and start again."),
    ),
    FlowFinishedError.code: (
        200,
        translatable("You're done here"),
        translatable("You have already finished signing in here. You can go back to the site."),
    ),
    FlowBrowserMismatchError.code: (
        403,
        translatable("Continue in the browser you started in"),
        translatable(
            "This sign-in was started in another browser. Go back to the site and start again here."
        ),
    ),
    FlowFormExpiredError.code: (
        400,
        translatable("This page is out of date"),
        translatable("This form is out of date. Go back, reload the page and try again."),
    ),
    FlowBusyError.code: (
        409,
        translatable("Still working on your last step"),
        translatable(
            "This sign-in is still busy with your last step. Wait a moment and reload the page."
        ),
    ),
    FlowStepError.code: (
        409,
        translatable("Your sign-in has moved on"),
        translatable(
            "This sign-in is no longer at the step this form was for, so nothing was changed. "
            "Continue from where your sign-in is now."
        ),
    ),
    FlowClientChangedError.code: (
        400,
        translatable("We can't send you back"),
        translatable("The site's registration has changed. Please start again."),
    ),
    FlowError.code: (
        400,
        translatable("This sign-in can't continue"),
        translatable("This sign-in cannot continue."),
    ),
}
LOGOUT_CONFIRMATION_MESSAGE = translatable(
    "This sign-out question has expired or was already answered. "
    "If you want to sign out, start again from the site."
)


@dataclass(frozen=True)
class ErrorPage:
    """What the error page says: a title, what happened, and the way on (``next_url``, one of
    our pages) or back to the site when we know it. The template adds the request id."""

    status: int
    title: str
    message: str
    back_url: str | None = None
    site: str | None = None
    next_url: str | None = None
    next_label: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> Response:
        page, status = error_page(
            self.title,
            self.message,
            self.status,
            back_url=self.back_url,
            site=self.site,
            next_url=self.next_url,
            next_label=self.next_label,
        )
        return make_response(page, status, list(self.headers))


def page_for(error: BaseException) -> ErrorPage:
    """The hosted page for any error met while answering a browser, in its language."""
    _ = page_language().gettext
    if isinstance(error, FlowError):
        return _flow_page(error)
    if isinstance(error, AuthorizationPageError):
        return ErrorPage(
            400,
            _("We can't sign you in from this link"),
            # The reason is Authlib's, in English: a detail for the site's developers.
            _(
                "The site that sent you here made a request we cannot accept: %(reason)s Go "
                "back to the site and try again, or tell its owner.",
                reason=_sentence(error.description),
            ),
        )
    if isinstance(error, LogoutConfirmationError):
        return ErrorPage(400, _("This page is out of date"), _(LOGOUT_CONFIRMATION_MESSAGE))
    if isinstance(error, LogoutError):
        # Each LogoutRequestError's message is in the catalogues (extracted from logout.py).
        return ErrorPage(
            400,
            _("We can't sign you out from this link"),
            _(
                "%(reason)s Go back to the site and sign out there, or tell its owner.",
                reason=_(error.message),
            ),
        )
    if isinstance(error, DomainError):
        status = 404 if isinstance(error, PlatformError) and error.missing else 400
        return ErrorPage(status, _("We can't do that"), _(error.message))
    if isinstance(error, StoreUnavailableError):
        return ErrorPage(
            503,
            _("Sign-in is briefly unavailable"),
            _(
                "We can't continue your sign-in right now. Please wait a few seconds and reload "
                "this page, or go back to the site and try again."
            ),
            headers=(("Retry-After", str(OUTAGE_RETRY_AFTER)),),
        )
    if isinstance(error, HTTPException):
        status = error.code or 500
        title = HTTP_TITLES.get(status)
        return ErrorPage(
            status,
            _(title) if title else error.name,
            _(HTTP_MESSAGES.get(status, translatable("Please go back and try again."))),
        )
    return ErrorPage(
        500, _("Something went wrong"), _("Please go back to the site and try again in a moment.")
    )


def protocol_error(error: BaseException) -> ProtocolResponse:
    """The JSON answer of a protocol endpoint (/token, /userinfo, discovery...) for an error
    the Provider did not answer itself (it answers Authlib's OAuth2Error, RFC 6749 §5.2)."""
    headers: list[tuple[str, str]] = []
    if isinstance(error, InvalidAccessTokenError):
        # RFC 6750 §3.1: no error code when the request carried no token at all.
        challenge = 'Bearer error="invalid_token"' if error.presented else "Bearer"
        status, code, description = 401, "invalid_token", "The access token is not valid."
        headers.append(("WWW-Authenticate", challenge))
    elif isinstance(error, StoreUnavailableError):
        # temporarily_unavailable is RFC 6749 §4.1.2.1's name for exactly this state; the
        # token endpoint's own list (§5.2) has none, so RPs go by the 503 status.
        status, code, description = 503, "temporarily_unavailable", OUTAGE_MESSAGE
        headers.append(("Retry-After", str(OUTAGE_RETRY_AFTER)))
    elif isinstance(error, DomainError):
        status, code, description = 400, "invalid_request", error.message
    elif isinstance(error, HTTPException):
        status, code, description = error.code or 500, "invalid_request", error.description
    else:
        status, code, description = 500, "server_error", "Unexpected error."
    body = json.dumps({"error": code, "error_description": description})
    return ProtocolResponse(status, body, [("Content-Type", "application/json"), *headers])


def error_page(
    title: str,
    message: str,
    status: int,
    *,
    back_url: str | None = None,
    site: str | None = None,
    next_url: str | None = None,
    next_label: str | None = None,
) -> tuple[str, int]:
    """A page that explains, and offers the way on (``next_url``, one of our own pages) or
    back to the site when we know it."""
    page = render_template(
        "error.html",
        title=title,
        message=message,
        back_url=back_url,
        site=site,
        next_url=next_url,
        next_label=next_label,
    )
    return page, status


def _flow_page(error: FlowError) -> ErrorPage:
    _ = page_language().gettext
    status, title, message = FLOW_PAGES.get(error.code, FLOW_PAGES[FlowError.code])
    if isinstance(error, FlowStepError) and error.flow_id:
        # The way on is the flow's current page, not back to the site.
        return ErrorPage(
            status,
            _(title),
            _(message),
            next_url=url_for("pages.show", flow_id=error.flow_id),
            next_label=_("Continue signing in"),
        )
    back_url, site = _site_of(error.client_id, error.redirect_uri)
    return ErrorPage(status, _(title), _(message), back_url=back_url, site=site)


def _site_of(client_id: str | None, redirect_uri: str | None) -> tuple[str | None, str | None]:
    """The site a stopped flow came from: its name and home page (the redirect URI's origin)."""
    if not client_id or not redirect_uri:
        return None, None
    client = services().settings.client(client_id)
    if client is None or redirect_uri not in client.redirect_uris:
        return None, None
    parts = urlsplit(redirect_uri)
    return f"{parts.scheme}://{parts.netloc}/", client.display_name


def _sentence(text: str) -> str:
    """A library's error description as part of our sentence: lower-case start, one stop."""
    text = text.strip().rstrip(".")
    return (text[:1].lower() + text[1:] + ".") if text else ""
