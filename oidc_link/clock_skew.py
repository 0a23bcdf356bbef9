"""Whether this instance's clock agrees with Redis's TIME: ID tokens carry ``iat`` and
``exp`` from the local clock, so a clock minutes fast issues tokens that strict relying
parties reject. Measures and reports (log, gauge, /readyz); never adjusts the time used."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.metrics import Metrics
from oidc_link.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkewReading:
    """One comparison: this instance's clock minus Redis's, in whole seconds."""

    seconds: int
    limit: int

    @property
    def within_limit(self) -> bool:
        return abs(self.seconds) <= self.limit


class ClockSkew:
    """Compares the clocks at start and on every /readyz probe.

    Redis is the one clock every instance can see, so each instance measures against it;
    whole seconds on both sides (the Clock counts whole seconds), so a reading is good to
    about a second, plenty beside a limit of several. Going beyond the limit is logged at
    ERROR once, coming back within it once: a probe every few seconds must not flood the log.
    """

    def __init__(self, store: Store, clock: Clock, limit: int, metrics: Metrics) -> None:
        self._store = store
        self._clock = clock
        self._limit = limit
        self._metrics = metrics
        self._beyond = False
        self._lock = threading.Lock()

    def check(self) -> SkewReading:
        """One TIME round trip; StoreUnavailableError when Redis does not answer."""
        redis_now = self._store.server.time()
        reading = SkewReading(self._clock.now() - redis_now, self._limit)
        self._metrics.clock_skew(reading.seconds)
        with self._lock:
            was_beyond, self._beyond = self._beyond, not reading.within_limit
        if self._beyond and not was_beyond:
            log.error(
                "This instance's clock is %+d s off Redis's, beyond max_clock_skew (%d s): "
                "the ID tokens it signs carry times that far off, and strict relying parties "
                "reject tokens from the future. Keep every instance (and Redis) on NTP.",
                reading.seconds,
                self._limit,
                extra={"event": "clock.skewed", "skew_seconds": reading.seconds},
            )
        elif was_beyond and not self._beyond:
            log.warning(
                "This instance's clock agrees with Redis's again (%+d s)",
                reading.seconds,
                extra={"event": "clock.agrees", "skew_seconds": reading.seconds},
            )
        return reading
