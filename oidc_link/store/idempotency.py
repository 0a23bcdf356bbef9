"""Idempotency-Key records of the /v1 API in Redis: per API key (its digest) and
Idempotency-Key (its digest, as it is the client's choice of text), first an in-flight
marker with a short TTL, then the stored response. Stores; replay rules live elsewhere."""

from __future__ import annotations

from oidc_link.ids import same
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate


class IdempotencyStore(Aggregate):
    def claim(self, scope: str, key: str, record: str, seconds: int) -> bool:
        """Set the in-flight marker; SET NX: of two concurrent requests one runs."""
        return bool(self._redis.set(keyspace.idempotency(scope, key), record, nx=True, ex=seconds))

    def load(self, scope: str, key: str) -> str | None:
        return self._redis.get(keyspace.idempotency(scope, key))

    def save(self, scope: str, key: str, record: str, seconds: int) -> None:
        self._redis.set(keyspace.idempotency(scope, key), record, ex=seconds)

    def release(self, scope: str, key: str, record: str) -> None:
        """Drop an in-flight marker, only if it is still the one this request set."""
        name = keyspace.idempotency(scope, key)
        held = self._redis.get(name)
        if held is not None and same(held, record):
            self._redis.delete(name)
