"""The sandbox Link's sessions in Redis (link/sandbox.py's SandboxSessions), by their
client secret's digest, so every worker and instance can take any step; losing one means
that sign-in starts again. Sandbox only: the live Link keeps its own sessions, so this is
no aggregate of ours and sits apart from them."""

from __future__ import annotations

import redis

from oidc_link.clock import Clock
from oidc_link.ids import digest
from oidc_link.store import keyspace
from oidc_link.store.base import ISSUE_SANDBOX_CODE, TRY_SANDBOX_CODE, Aggregate, Outages


class SandboxSessionStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._issue_code = client.register_script(ISSUE_SANDBOX_CODE)
        self._try_code = client.register_script(TRY_SANDBOX_CODE)

    def open(self, secret: str, email: str, ttl: int) -> None:
        key = keyspace.sandbox_session(secret)
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.hset(key, mapping={"email": email, "attempts": 0})
        pipeline.expire(key, ttl)
        pipeline.execute()

    def email(self, secret: str) -> str | None:
        return self._redis.hget(keyspace.sandbox_session(secret), "email")

    def issue_code(self, secret: str, email: str, code: str, expires_at: int) -> bool:
        key = keyspace.sandbox_session(secret)
        return bool(self._issue_code(keys=[key], args=[email, digest(code), expires_at]))

    def try_code(
        self, secret: str, email: str, code: str | None, now: int, max_attempts: int
    ) -> str:
        """One of link/sandbox.py's CodeOutcome values (see TRY_SANDBOX_CODE)."""
        key = keyspace.sandbox_session(secret)
        outcome = self._try_code(
            keys=[key], args=[email, digest(code) if code is not None else "", now, max_attempts]
        )
        return outcome.decode() if isinstance(outcome, bytes) else outcome
