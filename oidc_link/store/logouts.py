"""Pending logout confirmations in Redis (RP-initiated logout's "sign out?" page), each
answered once; losing one means the user asks again. Apart from sessions: a confirmation is
keyed by its own id and lives by its own expiry, whatever the session does."""

from __future__ import annotations

from oidc_link.models import PendingLogout
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate


class LogoutStore(Aggregate):
    def add(self, record: PendingLogout) -> None:
        self._redis.set(
            keyspace.pending_logout(record.id),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
            nx=True,
        )

    def load(self, logout_id: str) -> PendingLogout | None:
        raw = self._redis.get(keyspace.pending_logout(logout_id))
        return PendingLogout.from_record(raw) if raw else None

    def take(self, logout_id: str) -> PendingLogout | None:
        raw = self._redis.getdel(keyspace.pending_logout(logout_id))
        return PendingLogout.from_record(raw) if raw else None
