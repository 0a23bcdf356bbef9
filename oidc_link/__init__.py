"""oidc-link: a self-hosted OpenID Connect provider for passwordless sign-in with Link.

``create_app`` and services.py are the composition root: the services, built once, and the
web layer around them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from oidc_link.config import Settings
    from oidc_link.services import Services


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    """Build the provider's WSGI app; tests pass services with fakeredis and a fixed clock."""
    from oidc_link.services import build_services
    from oidc_link.web import create_web_app

    # Authlib logs issued tokens at DEBUG level: never let those records through.
    logging.getLogger("authlib").setLevel(logging.INFO)
    services = services or build_services(settings)
    # Load (or create) the signing key now, so a broken Redis fails start-up, not a request.
    services.keys.load()
    # A clock far from Redis's is logged now, before this instance signs anything.
    services.clock_skew.check()
    services.build()
    return create_web_app(services)
