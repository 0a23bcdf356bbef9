"""The Flask layer: blueprints, request ids, error pages and security headers.

The only package that imports Flask; it translates HTTP to and from the layers below.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, g, jsonify, make_response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from oidc_link.config import SMS_COUNTING_LIMITS
from oidc_link.errors import StoreUnavailableError
from oidc_link.ids import new_id
from oidc_link.interaction import Interaction
from oidc_link.logout import Logout
from oidc_link.oauth import Provider
from oidc_link.services import Services
from oidc_link.sessions import Sessions
from oidc_link.web.context import EXTENSION_NAME, WebContext
from oidc_link.web.errors import HTTP_MESSAGES, error_page
from oidc_link.web.form_origin import install_form_origin_check
from oidc_link.web.headers import add_security_headers, is_https_issuer
from oidc_link.web.public_documents import DOCUMENTS_EXTENSION, PublicDocuments
from oidc_link.web.request_metrics import install_request_metrics
from oidc_link.web.static_documents import StaticDocuments

log = logging.getLogger(__name__)

JSON_PATHS = (
    "/token",
    "/par",
    "/userinfo",
    "/revoke",
    "/introspect",
    "/jwks.json",
    "/.well-known/",
    "/healthz",
    "/readyz",
)
# RFC 9110 §10.2.3: how long a client should wait before repeating a request that met a
# Redis outage; long enough for a restart or failover to finish, short for a person.
OUTAGE_RETRY_AFTER = 5


def asset_dir(name: str) -> str:
    """Templates and static files: inside the installed package, or at the repository top."""
    package = Path(__file__).resolve().parent.parent
    installed = package / name
    return str(installed if installed.is_dir() else package.parent / name)


def create_web_app(
    services: Services,
    interaction: Interaction,
    provider: Provider,
    sessions: Sessions,
    logout: Logout,
) -> Flask:
    from oidc_link.web.account import install_account_pages
    from oidc_link.web.api import API_PREFIX, error_response, install_api
    from oidc_link.web.health import health
    from oidc_link.web.logout import LOGOUT_EXTENSION, logout_pages
    from oidc_link.web.pages import pages
    from oidc_link.web.protocol import protocol
    from oidc_link.web.request_log import install_request_log

    app = Flask(
        "oidc_link",
        template_folder=asset_dir("templates"),
        static_folder=asset_dir("static"),
    )
    # First, so that every other hook's time is part of the request's.
    install_request_metrics(app, services.metrics)
    app.extensions[EXTENSION_NAME] = WebContext(services, interaction, provider, sessions)
    app.extensions[LOGOUT_EXTENSION] = logout
    documents = PublicDocuments(services.settings, services.keys, app.json.dumps)
    app.extensions[DOCUMENTS_EXTENSION] = documents
    hops = services.settings.proxy_hops
    if hops:
        # Trust exactly the configured proxies, so a client cannot pick its own address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.register_blueprint(protocol)
    app.register_blueprint(pages)
    app.register_blueprint(logout_pages)
    install_api(app, services)
    install_account_pages(app, services, provider.accounts, logout)
    app.register_blueprint(health)

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = new_id("req")

    install_request_log(app, services.settings)
    install_form_origin_check(app, services.settings.issuer)

    # The sandbox's banner says which limits on sent codes it leaves off (none configured).
    limits = services.settings.limits
    uncounted = [name for name in SMS_COUNTING_LIMITS if getattr(limits, name) is None]

    @app.context_processor
    def page_globals() -> dict[str, object]:
        return {
            "sandbox": services.settings.is_sandbox,
            "sandbox_sms_limits_off": bool(uncounted),
            "request_id": g.get("request_id", ""),
        }

    https_issuer = is_https_issuer(services.settings.issuer)

    @app.after_request
    def add_headers(response: Response) -> Response:
        add_security_headers(
            response.headers,
            g.get("request_id", ""),
            page=response.mimetype == "text/html",
            cacheable=request.path.startswith("/static/"),
            https=https_issuer,
        )
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if request.path.startswith(API_PREFIX + "/"):
            # DESIGN.md §6: never an HTML page on the /v1 API (unknown path, wrong method...).
            answer = make_response(
                error_response(status, "invalid_request_error", error.description or error.name)
            )
        elif request.path.startswith(JSON_PATHS):
            answer = make_response(
                jsonify(error="invalid_request", error_description=error.description), status
            )
        else:
            answer = make_response(
                error_page(
                    error.name, HTTP_MESSAGES.get(status, "Please go back and try again."), status
                )
            )
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110 §15.5.6: a 405 names the methods the resource does allow.
            answer.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return answer

    @app.errorhandler(StoreUnavailableError)
    def store_unavailable(
        error: StoreUnavailableError,
    ) -> tuple[Response | str, int, dict[str, str]]:
        # The store logs the outage (or the refused writes) once when it begins; here only
        # which request met it, and the count by cause.
        log.info(
            "Answered 503: Redis %s (request id %s)",
            error.cause.replace("_", " "),
            g.get("request_id"),
            extra={"cause": error.cause},
        )
        services.metrics.store_unavailable(error.cause)
        retry = {"Retry-After": str(OUTAGE_RETRY_AFTER)}
        message = "The service is briefly unavailable. Please try again in a few seconds."
        if request.path.startswith(API_PREFIX + "/"):
            # DESIGN.md §6: the /v1 API answers in Stripe's error shape.
            answer, status = error_response(503, "api_error", message, code="service_unavailable")
            return answer, status, retry
        if request.path.startswith(JSON_PATHS):
            # temporarily_unavailable is RFC 6749 §4.1.2.1's name for exactly this state;
            # the token endpoint's own list (§5.2) has none, so RPs go by the 503 status.
            return jsonify(error="temporarily_unavailable", error_description=message), 503, retry
        page, status = error_page(
            "Sign-in is briefly unavailable",
            "We can't continue your sign-in right now. Please wait a few seconds and reload "
            "this page, or go back to the site and try again.",
            503,
        )
        return page, status, retry

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response | str, int]:
        log.exception("Unhandled error (request id %s)", g.get("request_id"))
        if request.path.startswith(API_PREFIX + "/"):
            return error_response(500, "api_error", "Unexpected error; please retry later.")
        if request.path.startswith(JSON_PATHS):
            return jsonify(error="server_error", error_description="Unexpected error."), 500
        return error_page(
            "Something went wrong", "Please go back to the site and try again in a moment.", 500
        )

    # Outermost, around ProxyFix too (the documents are the same for every client): a plain
    # GET of discovery or the JWKS is answered before Flask, as Flask would answer it.
    app.wsgi_app = StaticDocuments(
        app.wsgi_app, documents, app.url_map, services.settings, services.metrics
    )
    return app
