"""Services: the shared things every request needs, built once by create_app()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oidc_link.clock import Clock, SystemClock
from oidc_link.config import Settings
from oidc_link.keys import SigningKeys
from oidc_link.link import LinkClient, make_link_client
from oidc_link.store import Store, connect

if TYPE_CHECKING:
    import redis


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    store: Store
    keys: SigningKeys
    link: LinkClient


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    redis_client: redis.Redis | None = None,
    announce: Callable[[str], None] | None = None,
) -> Services:
    """Wire the services from settings; tests pass a fixed clock, a Redis and a console."""
    clock = clock or SystemClock()
    store = Store(redis_client if redis_client is not None else connect(settings.redis_url), clock)
    keys = SigningKeys(store, clock, settings.keys, settings.lifetimes.id_token)
    link = make_link_client(settings.link, clock, announce)
    return Services(settings=settings, clock=clock, store=store, keys=keys, link=link)
