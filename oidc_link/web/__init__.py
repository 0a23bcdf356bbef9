"""The Flask layer: blueprints, request ids, error pages and security headers.

The only package that imports Flask; it translates HTTP to and from the layers below.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix

from oidc_link.config import SMS_COUNTING_LIMITS
from oidc_link.errors import DomainError, StoreUnavailableError
from oidc_link.oauth.messages import AuthorizationPageError, InvalidAccessTokenError
from oidc_link.services import Services
from oidc_link.web.api.errors import ApiError
from oidc_link.web.context import EXTENSION_NAME, WebContext
from oidc_link.web.errors import page_for, protocol_error
from oidc_link.web.fast_path import FastPath
from oidc_link.web.fixed_limits import request_class_for, response_class_for
from oidc_link.web.languages import (
    LANGUAGES_EXTENSION,
    Languages,
    template_words,
)
from oidc_link.web.plain_flask import PlainFlask
from oidc_link.web.public_documents import PublicDocuments
from oidc_link.web.token_fast_path import install_token_fast_path

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
# Errors a surface answers as they are; anything else is a bug, logged with its traceback.
_EXPECTED = (HTTPException, DomainError, ApiError, AuthorizationPageError, InvalidAccessTokenError)


def asset_dir(name: str) -> str:
    """Templates and static files: inside the installed package, or at the repository top."""
    package = Path(__file__).resolve().parent.parent
    installed = package / name
    return str(installed if installed.is_dir() else package.parent / name)


def create_web_app(services: Services) -> Flask:
    """The Flask app around ``services``: its one extension slot holds them (and the
    public documents), and every view reads them through web/context.py."""
    from oidc_link.web.account import account_pages
    from oidc_link.web.api import API_PREFIX, api
    from oidc_link.web.api.errors import api_error_for, error_response
    from oidc_link.web.brand import brand
    from oidc_link.web.health import health
    from oidc_link.web.logout import logout_pages
    from oidc_link.web.pages import pages
    from oidc_link.web.protocol import protocol, to_flask, token
    from oidc_link.web.request_frame import install_request_frame

    app = PlainFlask(
        "oidc_link",
        template_folder=asset_dir("templates"),
        static_folder=asset_dir("static"),
    )
    app.request_class = request_class_for(app.config)
    app.response_class = response_class_for(app.config)
    # First, so that every other hook's time is part of the request's, and the request id
    # is there for every other one.
    install_request_frame(app, services)
    documents = PublicDocuments(services.settings, services.keys, app.json.dumps)
    app.extensions[EXTENSION_NAME] = WebContext(services, documents)
    # Every catalogue, compiled once here for the life of the process.
    app.extensions[LANGUAGES_EXTENSION] = Languages(services.settings.default_locale)
    hops = services.settings.proxy_hops
    if hops:
        # Trust exactly the configured proxies, so a client cannot pick its own address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.register_blueprint(protocol)
    app.register_blueprint(pages)
    app.register_blueprint(logout_pages)
    app.register_blueprint(api)
    app.register_blueprint(account_pages)
    app.register_blueprint(health)
    app.register_blueprint(brand)

    # After every blueprint added its template filters: the overlays share them.
    app.extensions[LANGUAGES_EXTENSION].bake(app.jinja_env)

    # The sandbox's banner says which limits on sent codes it leaves off (none configured).
    limits = services.settings.limits
    uncounted = [name for name in SMS_COUNTING_LIMITS if getattr(limits, name) is None]

    static_path = app.static_url_path or ""

    @app.context_processor
    def page_globals() -> dict[str, object]:
        return {
            "sandbox": services.settings.is_sandbox,
            "sandbox_sms_limits_off": bool(uncounted),
            "request_id": g.get("request_id", ""),
            # What url_for("static", filename=...) starts with, built once per page.
            "static_url": request.script_root + static_path,
            # The page's language: _, ngettext, and language (its tag and direction).
            **template_words(),
        }

    @app.errorhandler(Exception)
    def answer_error(error: Exception) -> Response:
        """Every error that reaches Flask, answered in its surface's shape (DESIGN.md §6)."""
        _note(error, services)
        if request.path.startswith(API_PREFIX + "/"):
            answer = error_response(api_error_for(error))
        elif request.path.startswith(JSON_PATHS):
            answer = to_flask(protocol_error(error))
        else:
            answer = page_for(error).response()
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110 §15.5.6: a 405 names the methods the resource does allow.
            answer.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return answer

    # Inside ProxyFix, so it sees the request Flask would: a plain POST /token answered
    # before Flask's request and response objects, as the token view answers it.
    install_token_fast_path(app, token)
    # Outermost, around ProxyFix too (the documents are the same for every client): a plain
    # GET of discovery or the JWKS is answered before Flask, as Flask would answer it.
    app.wsgi_app = FastPath(
        app.wsgi_app, documents, app.url_map, services.settings, services.metrics
    )
    return app


def _note(error: Exception, services: Services) -> None:
    """Log what an error says about us: an outage by its cause, a bug with its traceback."""
    if isinstance(error, StoreUnavailableError):
        # The store logs the outage (or the refused writes) once when it begins; here only
        # which request met it, and the count by cause.
        log.info(
            "Answered 503: Redis %s (request id %s)",
            error.cause.replace("_", " "),
            g.get("request_id"),
            extra={"cause": error.cause},
        )
        services.metrics.store_unavailable(error.cause)
    elif not isinstance(error, _EXPECTED):
        log.error("Unhandled error (request id %s)", g.get("request_id"), exc_info=error)
