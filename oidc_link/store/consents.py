"""Remembered consent in Redis: one hash per (client, user) whose fields are scopes and
values the epoch second each grant ends. Losing one only means the consent page is shown
again. Stores grants; whether consent is needed is decided elsewhere."""

from __future__ import annotations

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate, Outages
from oidc_link.store.outbox import OutboxEntry, OutboxStore
from oidc_link.store.told import DELETE_AND_TELL, entry_args


class ConsentStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._outbox = OutboxStore(client, clock, outages)
        # A consent forgotten, told (issue 18's account.application.deauthorized) only by
        # the delete that removed one: revoking what was never allowed, or twice, tells nothing.
        self._delete_consent = client.register_script(DELETE_AND_TELL)

    def load(self, user: str, client_id: str) -> dict[str, int]:
        raw = self._redis.hgetall(keyspace.consent(client_id, user))
        return {scope: int(until) for scope, until in raw.items()}

    def add(self, user: str, client_id: str, scopes: dict[str, int], expires_at: int) -> None:
        """Add (or renew) scopes in one transaction; the key lives until ``expires_at``."""
        if not scopes:
            return
        key = keyspace.consent(client_id, user)
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.hset(key, mapping={scope: str(until) for scope, until in scopes.items()})
        pipeline.expire(key, self._ttl_until(expires_at))
        pipeline.execute()

    def delete(self, user: str, client_id: str, event: OutboxEntry | None = None) -> bool:
        """Forget the consent; False when there was none. ``event`` is written with the
        delete, to the consent's own outbox stream (its slot), only when one was removed."""
        key = keyspace.consent(client_id, user)
        if event is None:
            return bool(self._redis.delete(key))
        stream = self._outbox.announce(key)
        return bool(self._delete_consent(keys=[key, stream], args=entry_args(event)))
