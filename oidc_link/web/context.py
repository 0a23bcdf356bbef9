"""What the views need, attached to the Flask app once by create_web_app()."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from oidc_link.interaction import Interaction
from oidc_link.oauth import Provider
from oidc_link.services import Services
from oidc_link.sessions import Sessions

EXTENSION_NAME = "oidc_link"


@dataclass(frozen=True)
class WebContext:
    services: Services
    interaction: Interaction
    provider: Provider
    sessions: Sessions


def web_context() -> WebContext:
    return current_app.extensions[EXTENSION_NAME]
