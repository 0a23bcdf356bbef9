"""Every Redis key, TTL and command lives here, behind domain methods.

Bearer secrets (codes, tokens) are keyed by their SHA-256 digest; single-use things are
consumed with GETDEL; every key has a TTL unless a comment says why not.
"""

from __future__ import annotations

import logging

import redis

from oidc_link.clock import Clock
from oidc_link.ids import digest
from oidc_link.models import AccessToken, AuthorizationCode, Flow, SigningKey

log = logging.getLogger(__name__)

PREFIX = "oidc-link:v1:"


def connect(redis_url: str | None) -> redis.Redis:
    """A client for ``redis_url``, or an embedded in-process fakeredis when there is none."""
    if redis_url:
        return redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )
    import fakeredis

    log.warning(
        "No REDIS_URL: using an embedded in-process Redis. State is lost on restart and not "
        "shared between processes; set REDIS_URL for anything but a demo."
    )
    return fakeredis.FakeRedis(decode_responses=True)


class Store:
    def __init__(self, client: redis.Redis, clock: Clock) -> None:
        self._redis = client
        self._clock = clock

    def _ttl_until(self, expires_at: int) -> int:
        # Expiry is computed from the injected clock, so tests with a fixed clock see the
        # same lifetimes as production; Redis still drops the key on its own.
        return max(1, expires_at - self._clock.now())

    # Flows: pending sign-ins. Losing one means the user starts again.

    def add_flow(self, flow: Flow) -> None:
        self._redis.set(
            PREFIX + "flow:" + flow.id,
            flow.to_record(),
            ex=self._ttl_until(flow.expires_at),
            nx=True,
        )

    def save_flow(self, flow: Flow) -> bool:
        """Update a pending flow; False if it is gone (finished or expired) and stays gone.

        SET XX, so a late write from another request can never bring a finished flow back.
        """
        return bool(
            self._redis.set(
                PREFIX + "flow:" + flow.id,
                flow.to_record(),
                ex=self._ttl_until(flow.expires_at),
                xx=True,
            )
        )

    def load_flow(self, flow_id: str) -> Flow | None:
        raw = self._redis.get(PREFIX + "flow:" + flow_id)
        return Flow.from_record(raw) if raw else None

    def take_flow(self, flow_id: str) -> Flow | None:
        """Remove and return a flow, so that one sign-in completes at most once."""
        raw = self._redis.getdel(PREFIX + "flow:" + flow_id)
        return Flow.from_record(raw) if raw else None

    # Authorization codes: single use; a lost code only means the RP starts again.

    def save_code(self, code: str, record: AuthorizationCode) -> None:
        self._redis.set(
            PREFIX + "code:" + digest(code),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def take_code(self, code: str) -> AuthorizationCode | None:
        """Atomically consume a code: of two concurrent redemptions only one gets it."""
        raw = self._redis.getdel(PREFIX + "code:" + digest(code))
        return AuthorizationCode.from_record(raw) if raw else None

    # Access tokens: opaque, looked up by /userinfo.

    def save_access_token(self, token: str, record: AccessToken) -> None:
        self._redis.set(
            PREFIX + "access_token:" + digest(token),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def load_access_token(self, token: str) -> AccessToken | None:
        raw = self._redis.get(PREFIX + "access_token:" + digest(token))
        return AccessToken.from_record(raw) if raw else None

    # Signing keys: no TTL, on purpose. A key must outlive every token it signed, and
    # losing it silently would break every relying party (rotation is issue 4).

    def load_signing_key(self, alg: str) -> SigningKey | None:
        raw = self._redis.get(PREFIX + "signing_key:" + alg)
        return SigningKey.from_record(raw) if raw else None

    def add_signing_key(self, key: SigningKey) -> bool:
        """Store ``key`` unless one exists already; False means another instance won the race."""
        return bool(self._redis.set(PREFIX + "signing_key:" + key.alg, key.to_record(), nx=True))

    def ping(self) -> bool:
        return bool(self._redis.ping())
