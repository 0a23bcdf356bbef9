"""Services: every object a request needs, each built once from settings, a store and a clock.

The composition root with create_app(): no other module constructs a service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from oidc_link.backchannel import BACKCHANNEL_LOGOUT_NOTICE, LogoutNotices
from oidc_link.clock import Clock, SystemClock
from oidc_link.clock_skew import ClockSkew
from oidc_link.config import Settings
from oidc_link.interaction import Interaction
from oidc_link.keys import SigningKeys
from oidc_link.link import LinkClient
from oidc_link.link.measured import MeasuredLinkClient
from oidc_link.link.switch import make_link_client
from oidc_link.logout import Logout
from oidc_link.metrics import Metrics
from oidc_link.oauth import Provider
from oidc_link.oauth.consent import Consents
from oidc_link.oauth.id_token import IdTokens
from oidc_link.oauth.sso import SessionReuse
from oidc_link.oauth.tokens import TokenLifecycle
from oidc_link.oauth.userinfo import UserInfo
from oidc_link.outbound import Outbound
from oidc_link.outbox.handling import FanOut, Handler
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.platform.account_links import AccountLinks
from oidc_link.platform.account_sessions import AccountSessions
from oidc_link.platform.accounts import Accounts
from oidc_link.platform.events import Events
from oidc_link.platform.idempotency import Idempotency
from oidc_link.sessions import Sessions
from oidc_link.sign_in import SignIn
from oidc_link.store import Store, connect
from oidc_link.store.sessions import BACKCHANNEL_LOGOUT
from oidc_link.store.webhook_endpoints import EVENT
from oidc_link.webhooks.deliveries import WEBHOOK_DELIVERY, WebhookDeliveries
from oidc_link.webhooks.delivery import WebhookSender

if TYPE_CHECKING:
    import redis
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """The parts given from outside (fields), and the services built from them on first
    use (cached properties), so that Services assembled by hand in tests are complete too."""

    settings: Settings
    clock: Clock
    store: Store
    keys: SigningKeys
    link: LinkClient
    # Services assembled by hand (tests) count on a registry of their own.
    metrics: Metrics = field(default_factory=Metrics.standalone)

    def build(self) -> None:
        """Build every service now (create_app, at start), so that a configuration problem
        (a bad inline JWK Set, say) stops start-up, not a request."""
        for name, member in vars(type(self)).items():
            if isinstance(member, cached_property):
                getattr(self, name)

    @cached_property
    def clock_skew(self) -> ClockSkew:
        return ClockSkew(self.store, self.clock, self.settings.max_clock_skew, self.metrics)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self.store, self.clock, self.settings.lifetimes)

    @cached_property
    def interaction(self) -> Interaction:
        return Interaction(
            self.store,
            self.link,
            self.clock,
            self.settings.lifetimes,
            self.settings.limits,
            metrics=self.metrics,
            rehearse_limits=self.settings.is_sandbox,
        )

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.store, self.clock, self.settings.subject_salt, self.events)

    @cached_property
    def events(self) -> Events:
        return Events(self.store, self.clock, self.settings.clients)

    @cached_property
    def account_links(self) -> AccountLinks:
        settings = self.settings
        return AccountLinks(
            self.store, self.clock, settings.lifetimes, self.accounts, settings.issuer
        )

    @cached_property
    def account_sessions(self) -> AccountSessions:
        return AccountSessions(self.store, self.clock, self.settings.lifetimes)

    @cached_property
    def idempotency(self) -> Idempotency:
        return Idempotency(self.store)

    @cached_property
    def tokens(self) -> TokenLifecycle:
        return TokenLifecycle(self.settings, self.store, self.clock)

    @cached_property
    def consents(self) -> Consents:
        return Consents(self.store, self.clock, self.settings.lifetimes, self.accounts, self.events)

    @cached_property
    def id_tokens(self) -> IdTokens:
        return IdTokens(self.settings, self.keys, self.clock)

    @cached_property
    def userinfo(self) -> UserInfo:
        return UserInfo(self.settings, self.tokens)

    @cached_property
    def provider(self) -> Provider:
        return Provider(
            self.settings,
            self.store,
            self.keys,
            self.clock,
            tokens=self.tokens,
            consents=self.consents,
            accounts=self.accounts,
            id_tokens=self.id_tokens,
            session_reuse=SessionReuse(self.keys, self.clock, self.accounts),
            metrics=self.metrics,
        )

    @cached_property
    def sign_in(self) -> SignIn:
        return SignIn(self.store, self.sessions, self.interaction, self.provider, self.accounts)

    @cached_property
    def outbox(self) -> OutboxRunner:
        """The outbox's relay and delivery threads of this process, built here and started
        by whoever runs the process (server.py, the demo): never by create_app."""
        return OutboxRunner(
            self.store,
            self.clock,
            self.settings.outbox,
            self.metrics,
            self.outbox_handlers(),
            self.outbox_fan_outs(),
        )

    @cached_property
    def logout(self) -> Logout:
        return Logout(
            self.settings,
            self.store,
            self.keys,
            self.clock,
            self.sessions,
            self.accounts,
            self.tokens,
        )

    # The outbox's kinds (issue 18), for its worker: what each kind of entry becomes as it
    # leaves its aggregate's stream, and what delivers it.

    @cached_property
    def logout_notices(self) -> LogoutNotices:
        """Back-channel logout on the outbox: logout.py signs, outbound.py POSTs."""
        outbound = Outbound.for_settings(self.settings)
        return LogoutNotices(self.settings.client, self.logout.logout_token, outbound, self.metrics)

    @cached_property
    def webhook_deliveries(self) -> WebhookDeliveries:
        """Events to the endpoints subscribed to them, each attempt signed (webhooks/)."""
        sender = WebhookSender(Outbound.for_settings(self.settings), self.clock)
        return WebhookDeliveries(
            self.settings,
            self.store.webhook_endpoints,
            sender,
            self.metrics,
            save_event=self.save_event,
        )

    def outbox_fan_outs(self) -> dict[str, FanOut]:
        return {
            BACKCHANNEL_LOGOUT: self.logout_notices.fan_out,
            EVENT: self.webhook_deliveries.fan_out,
        }

    def outbox_handlers(self) -> dict[str, Handler]:
        return {
            BACKCHANNEL_LOGOUT_NOTICE: self.logout_notices.deliver,
            WEBHOOK_DELIVERY: self.webhook_deliveries.deliver,
        }

    def save_event(self, event: dict[str, Any]) -> None:
        """Keep an event leaving the outbox for GET /v1/events (store/events.py), before
        its webhook deliveries are written: what a platform is told it can also list."""
        self.store.events.save(event)


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
    store = Store(
        redis_client,
        clock,
        wait_for_replica_ms=settings.redis.wait_for_replica_ms,
        compatible_layout=settings.redis.compatible_layout,
    )
    if settings.redis.compatible_layout:
        # Meant for one rollout: said at each start, so that it is not left on for good.
        log.warning(
            'Redis key_layout "compatible": tokens and codes are written as versions before '
            "issue 17 wrote them; remove [redis] key_layout once none of those serves"
        )
    keys = SigningKeys(store, clock, settings.keys, settings.lifetimes.id_token)
    metrics = Metrics.for_settings(settings, metrics_registry)
    link = MeasuredLinkClient(
        make_link_client(settings.link, clock, announce, store.sandbox), metrics
    )
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        keys=keys,
        link=link,
        metrics=metrics,
    )
