"""The web layer's one accessor: the Services create_web_app() attached to the app, as
flaskr's get_db; views take what they need from it and build nothing themselves."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from flask.globals import _cv_app

from oidc_link.services import Services
from oidc_link.web.public_documents import PublicDocuments

EXTENSION_NAME = "oidc_link"


@dataclass(frozen=True)
class WebContext:
    """The app's one extension slot: the services, and the public documents encoded with
    the app's own JSON provider (a web presenter, so not a service)."""

    services: Services
    documents: PublicDocuments


def _app() -> Flask:
    """The app of the current context, read from Flask's context variable rather than
    through the ``current_app`` proxy (several look-ups a request). Outside an app context
    the proxy is asked, for Flask's own error."""
    context = _cv_app.get(None)
    if context is None:
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    return context.app


def services() -> Services:
    return _app().extensions[EXTENSION_NAME].services  # type: ignore[no-any-return]


def public_documents() -> PublicDocuments:
    return _app().extensions[EXTENSION_NAME].documents  # type: ignore[no-any-return]
