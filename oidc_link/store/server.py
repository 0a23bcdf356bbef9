"""Redis itself, rather than any record: is it answering, and what time its clock says.
For health checks and the clock-skew check; reads and writes no key."""

from __future__ import annotations

from oidc_link.store.base import Aggregate


class ServerStore(Aggregate):
    def ping(self) -> bool:
        """One PING round trip; raises StoreUnavailableError when Redis cannot be reached."""
        return bool(self._redis.ping())

    def time(self) -> int:
        """Redis's clock (TIME), in whole seconds since the epoch: one round trip, which
        also tells that Redis answers (StoreUnavailableError when it does not)."""
        seconds, _microseconds = self._redis.time()
        return int(seconds)
