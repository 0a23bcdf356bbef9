"""Services: the shared things every request needs, built once by create_app()."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from oidc_link.clock import Clock, SystemClock
from oidc_link.clock_skew import ClockSkew
from oidc_link.config import Settings
from oidc_link.keys import SigningKeys
from oidc_link.link import LinkClient
from oidc_link.link.measured import MeasuredLinkClient
from oidc_link.link.switch import make_link_client
from oidc_link.metrics import Metrics
from oidc_link.store import Store, connect

if TYPE_CHECKING:
    import redis
    from prometheus_client import CollectorRegistry


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    store: Store
    keys: SigningKeys
    link: LinkClient
    # Services assembled by hand (tests) count on a registry of their own.
    metrics: Metrics = field(default_factory=Metrics.standalone)

    @cached_property
    def clock_skew(self) -> ClockSkew:
        """Built from the parts above on first use (create_app, at start), so Services
        assembled by hand have it too."""
        return ClockSkew(self.store, self.clock, self.settings.max_clock_skew, self.metrics)


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    redis_client: redis.Redis | None = None,
    announce: Callable[[str], None] | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Services:
    """Wire the services from settings; tests pass a fixed clock, a Redis and a console.

    Metrics go on ``metrics_registry``, else on a registry of this app's own.
    """
    clock = clock or SystemClock()
    if redis_client is None:
        redis_client = connect(settings.redis_url, settings.redis)
    store = Store(redis_client, clock)
    keys = SigningKeys(store, clock, settings.keys, settings.lifetimes.id_token)
    metrics = Metrics.for_settings(settings, metrics_registry)
    link = MeasuredLinkClient(
        make_link_client(settings.link, clock, announce, store.sandbox), metrics
    )
    return Services(
        settings=settings, clock=clock, store=store, keys=keys, link=link, metrics=metrics
    )
