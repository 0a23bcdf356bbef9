"""Signing-key rings in Redis: a hash per algorithm, one field per slot, and the list of
rings this Redis has held. No TTL, on purpose: a key must outlive every token it signed,
and keys.py's schedule retires keys explicitly. Holds records, never key material's use."""

from __future__ import annotations

from oidc_link.models import SigningKey
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate


class KeyringStore(Aggregate):
    def load(self, alg: str) -> list[SigningKey]:
        raw = self._redis.hgetall(keyspace.key_ring(alg))
        return sorted((SigningKey.from_record(v) for v in raw.values()), key=lambda k: k.signs_from)

    def add(self, key: SigningKey) -> bool:
        """Store ``key`` in its slot unless the slot is taken: one winner among racing instances."""
        return bool(self._redis.hsetnx(keyspace.key_ring(key.alg), str(key.slot), key.to_record()))

    def remove(self, key: SigningKey) -> None:
        self._redis.hdel(keyspace.key_ring(key.alg), str(key.slot))

    # Which key rings this Redis has held: a hash, one field per algorithm, the time its ring
    # was first seen. No TTL, and kept when the ring empties: it is how keys.py tells a new
    # installation (no ring yet) from a ring that existed and is gone.

    def record(self, alg: str, since: int) -> None:
        self._redis.hsetnx(keyspace.KEY_RINGS, alg, since)

    def existed(self, alg: str) -> bool:
        return bool(self._redis.hexists(keyspace.KEY_RINGS, alg))
