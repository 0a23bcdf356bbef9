"""The sandbox Link's shared state in Redis (link/sandbox.py's SandboxSessions): the key its
session handles are sealed with, and what checking codes did to each session. Sandbox only:
the live Link keeps its own sessions, so this is no aggregate of ours and sits apart from
them. Losing a session's state forgives its wrong attempts; losing the key ends every
sandbox sign-in under way (a new key is made)."""

from __future__ import annotations

import base64
import os

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import CHECK_SANDBOX_CODE, Aggregate, Outages


class SandboxSessionStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._check_code = client.register_script(CHECK_SANDBOX_CODE)
        self._key: bytes | None = None

    def sealing_key(self, *, again: bool = False) -> bytes:
        """The sandbox's sealing key: made by the first worker to ask (SET NX), read by the
        others, then kept in this process, so a sandbox step asks Redis for it only once.
        ``again``: read it anew (a handle did not open), writing back the one kept here if
        Redis lost it, as keys.py does with signing keys."""
        if self._key is None or again:
            kept = self._key or os.urandom(32)
            pipeline = self._redis.pipeline(transaction=False)
            pipeline.set(keyspace.SANDBOX_KEY, base64.urlsafe_b64encode(kept).decode(), nx=True)
            pipeline.get(keyspace.SANDBOX_KEY)
            _, stored = pipeline.execute()
            self._key = base64.urlsafe_b64decode(stored) if stored else kept
        return self._key

    def check_code(
        self, session_id: str, sent: int, right: bool, max_attempts: int, ttl: int
    ) -> str:
        """One of link/sandbox.py's CodeOutcome values (see CHECK_SANDBOX_CODE)."""
        outcome = self._check_code(
            keys=[keyspace.sandbox_session(session_id)],
            args=[sent, "1" if right else "0", max_attempts, max(1, ttl)],
        )
        return outcome.decode() if isinstance(outcome, bytes) else outcome
