"""The web layer's one accessor: the Services create_web_app() attached to the app, as
flaskr's get_db; views take what they need from it and build nothing themselves."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from oidc_link.services import Services
from oidc_link.web.public_documents import PublicDocuments

EXTENSION_NAME = "oidc_link"


@dataclass(frozen=True)
class WebContext:
    """The app's one extension slot: the services, and the public documents encoded with
    the app's own JSON provider (a web presenter, so not a service)."""

    services: Services
    documents: PublicDocuments


def services() -> Services:
    return current_app.extensions[EXTENSION_NAME].services


def public_documents() -> PublicDocuments:
    return current_app.extensions[EXTENSION_NAME].documents
