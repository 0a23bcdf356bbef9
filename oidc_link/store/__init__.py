"""The store: Redis behind one object per aggregate (``store.flows``, ``store.tokens``, ...),
all over one client, with ``writes()`` batching writes of several aggregates into one round
trip. Builds the aggregates only; every key is keyspace.py's, every command an aggregate's.
"""

from __future__ import annotations

import redis

from oidc_link.clock import Clock
from oidc_link.store.accounts import AccountStore
from oidc_link.store.base import Outages, Writes
from oidc_link.store.connection import connect
from oidc_link.store.consents import ConsentStore
from oidc_link.store.events import EventStore
from oidc_link.store.flows import FlowStore
from oidc_link.store.idempotency import IdempotencyStore
from oidc_link.store.keyring import KeyringStore
from oidc_link.store.limits import LimitStore, RateLimit
from oidc_link.store.logouts import LogoutStore
from oidc_link.store.outbox import OutboxStore
from oidc_link.store.outbox_deliveries import DeliveryStore
from oidc_link.store.sandbox import SandboxSessionStore
from oidc_link.store.server import ServerStore
from oidc_link.store.sessions import SessionStore
from oidc_link.store.tokens import TokenStore
from oidc_link.store.webhook_endpoints import WebhookEndpointStore

__all__ = ["RateLimit", "Store", "Writes", "connect"]


class Store:
    """Each aggregate once, over one client and one clock, sharing one outage log.
    ``compatible_layout``: tokens, codes and sign-ins written as 1fcd0cc did (``[redis]
    key_layout``)."""

    def __init__(
        self,
        client: redis.Redis,
        clock: Clock,
        *,
        wait_for_replica_ms: int = 0,
        compatible_layout: bool = False,
    ) -> None:
        self._redis = client
        # Also what identities may carry: 1fcd0cc cannot read one with a city (Interaction).
        self.compatible_layout = compatible_layout
        self._outages = Outages(clock)
        parts = (client, clock, self._outages)
        self.flows = FlowStore(*parts, tagged=not compatible_layout)
        self.sessions = SessionStore(*parts)
        self.logouts = LogoutStore(*parts)
        # One Redis may hold codes of both layouts during a rolling upgrade; a cluster never
        # held an untagged one (and could not run a script across its slots).
        one_redis = not isinstance(client, redis.RedisCluster)
        self.tokens = TokenStore(
            *parts,
            tagged=not compatible_layout,
            both_code_forms=one_redis,
            wait_for_replica_ms=wait_for_replica_ms,
        )
        self.consents = ConsentStore(*parts)
        self.keyring = KeyringStore(*parts)
        self.limits = LimitStore(*parts)
        self.accounts = AccountStore(*parts)
        self.idempotency = IdempotencyStore(*parts)
        self.sandbox = SandboxSessionStore(*parts)
        self.server = ServerStore(*parts)
        self.outbox = OutboxStore(*parts)
        self.webhook_endpoints = WebhookEndpointStore(*parts)
        self.events = EventStore(*parts)
        self.deliveries = DeliveryStore(*parts)

    def writes(self) -> Writes:
        """Queue the writes of several methods (``writes=`` on each, of any aggregate), sent
        together at the end of the ``with`` block: one plain pipeline (base.Writes says why
        not a MULTI, and what keeps each method's write whole)."""
        return Writes(self._outages, self._redis.pipeline(transaction=False))
