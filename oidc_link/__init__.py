"""oidc-link: a self-hosted OpenID Connect provider for passwordless sign-in with Link.

``create_app`` is the one composition root: it wires settings, services and the web layer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from oidc_link.backchannel import BackchannelDelivery
    from oidc_link.config import Settings
    from oidc_link.services import Services


def create_app(
    settings: Settings,
    services: Services | None = None,
    backchannel: BackchannelDelivery | None = None,
) -> Flask:
    """Build the provider's WSGI app; tests pass services with fakeredis and a fixed clock,
    and may pass a back-channel logout delivery with short retry delays."""
    from oidc_link.backchannel import BackchannelDelivery
    from oidc_link.interaction import Interaction
    from oidc_link.logout import Logout
    from oidc_link.oauth import Provider
    from oidc_link.outbound import Outbound
    from oidc_link.services import build_services
    from oidc_link.sessions import Sessions
    from oidc_link.web import create_web_app

    # Authlib logs issued tokens at DEBUG level: never let those records through.
    logging.getLogger("authlib").setLevel(logging.INFO)
    services = services or build_services(settings)
    # Load (or create) the signing key now, so a broken Redis fails start-up, not a request.
    services.keys.load()
    # A clock far from Redis's is logged now, before this instance signs anything.
    services.clock_skew.check()
    interaction = Interaction(
        services.store,
        services.link,
        services.clock,
        settings.lifetimes,
        settings.limits,
        metrics=services.metrics,
        rehearse_limits=settings.is_sandbox,
    )
    provider = Provider(
        settings, services.store, services.keys, services.clock, metrics=services.metrics
    )
    sessions = Sessions(services.store, services.clock, settings.lifetimes)
    logout = Logout(
        settings,
        services.store,
        services.keys,
        services.clock,
        sessions,
        provider,
        backchannel or BackchannelDelivery(Outbound.for_settings(settings)),
    )
    return create_web_app(services, interaction, provider, sessions, logout)
