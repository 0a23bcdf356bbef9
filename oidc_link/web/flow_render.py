"""A flow's page: its step's template in the flow's language, for its client and brand; the
email and code pages, on every sign-in, filled in from their frames (web/page_frames.py)."""

from __future__ import annotations

from flask import Flask, Request, Response, render_template
from flask.globals import _cv_app

from oidc_link.config.brand import Brand
from oidc_link.models import Flow, FlowStep
from oidc_link.services import Services
from oidc_link.web.account import is_account_link_flow
from oidc_link.web.brand import accent_stylesheet_url, page_headers
from oidc_link.web.languages import use_language_in
from oidc_link.web.page_frames import page_frames

# A sign-in page: its HTML, status and the headers it sets itself (a branded page's policy).
Page = tuple[str, int, dict[str, str]]

_TEMPLATES = {
    FlowStep.EMAIL: "email.html",
    FlowStep.CODE: "code.html",
    FlowStep.NOT_ON_LINK: "not_on_link.html",
    FlowStep.LOCKED: "locked.html",
    FlowStep.CONSENT: "consent.html",
}
# What Werkzeug's Response makes of its default mimetype, text/html, for every page.
_HTML = "text/html; charset=utf-8"
# The steps every sign-in shows: their pages come from frames.
_FRAMED_STEPS = frozenset({FlowStep.EMAIL, FlowStep.CODE})


def render_flow_page(
    found: Services,
    http: Request,
    flow: Flow,
    flow_url: str,
    error: str | None = None,
    status: int = 200,
) -> Page:
    """The page of ``flow``'s step, its forms posting to ``flow_url``'s sub-paths (/email,
    /code, /cancel...), with ``error`` shown if any."""
    # The app and ``g`` from their context at once, not through Flask's proxies.
    context = _cv_app.get()
    app = context.app
    language = use_language_in(context, http, flow.locale)
    client = found.settings.client(flow.client_id)
    shown = client.brand if client else Brand()
    template = _TEMPLATES[flow.step]
    verifying = is_account_link_flow(flow)
    own = {
        "flow_url": flow_url,
        "email_value": flow.email or flow.authorization.get("login_hint", ""),
    }

    def render(**values: object) -> str:
        consent = None
        if flow.step == FlowStep.CONSENT and flow.identity is not None:
            consent = found.provider.consent_request(
                flow.client_id, flow.authorization, flow.identity
            )
        return render_template(
            template,
            client_name=client.display_name if client else flow.client_id,
            error=error,
            consent=consent,
            verifying=verifying,
            # The client's logo, links and accent (templates/_brand.html).
            brand=shown,
            brand_stylesheet=accent_stylesheet_url(http.script_root, shown),
            **values,
        )

    request_id = context.g.get("request_id", "")
    if error is None and flow.step in _FRAMED_STEPS and request_id and not _reloading(app):
        # The page globals' request id (web/__init__.py), in a hole like the flow's values.
        own["request_id"] = request_id
        key = (template, language.tag, flow.client_id, verifying, http.script_root)
        page = page_frames(app).page(key, flow, own, render)
    else:
        page = render(flow=flow, **own)
    return page, status, page_headers(shown)


def page_response(page: Page) -> Response:
    """The response Flask's ``make_response`` makes of ``page``: the app's response class,
    given the content type a page always has rather than working it out per page."""
    text, status, headers = page
    response_class: type[Response] = _cv_app.get().app.response_class
    return response_class(text, status, headers or None, content_type=_HTML)


def _reloading(app: Flask) -> bool:
    """Templates read again when their files change (``--dev``): no frame outlives an edit."""
    return bool(app.jinja_env.auto_reload)
