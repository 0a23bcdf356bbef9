"""Remembered consent in Redis: one hash per (client, user) whose fields are scopes and
values the epoch second each grant ends. Losing one only means the consent page is shown
again. Stores grants; whether consent is needed is decided elsewhere."""

from __future__ import annotations

from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate


class ConsentStore(Aggregate):
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

    def delete(self, user: str, client_id: str) -> None:
        self._redis.delete(keyspace.consent(client_id, user))
