"""The outbox's threads in one process: a relay thread (the relay's pass, due retries back
into the delivery stream, the lag gauge) and ``threads`` delivery workers. Started by the
server in each worker process and by the demo; never by create_app, so tests start them
only when they mean to.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping

from oidc_link.clock import Clock
from oidc_link.config import OutboxSettings
from oidc_link.errors import StoreUnavailableError
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import FanOut, Handler
from oidc_link.outbox.relay import Relay
from oidc_link.outbox.worker import Worker
from oidc_link.store import Store

log = logging.getLogger(__name__)

# Consumers of processes gone (every restart makes new ones) are dropped from the group
# once idle this long with nothing pending, looked for every this many relay passes.
FORGET_CONSUMERS_IDLE_MS = 24 * 3600 * 1000
FORGET_CONSUMERS_EVERY = 3600
# The lag gauge is measured every this many relay passes (a pipeline on the deliveries'
# slot each time): often enough for a scrape every 15 s.
MEASURE_EVERY = 5


def consumer_name(thread: int) -> str:
    """A consumer name no other thread, process or host uses: the host and process say
    whose it was (XINFO CONSUMERS), the random part keeps a restarted process apart."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{thread}"


class OutboxRunner:
    """The relay and the workers of one process; ``start`` once, ``stop`` at exit."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: OutboxSettings,
        metrics: Metrics,
        handlers: Mapping[str, Handler],
        fan_outs: Mapping[str, FanOut],
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self.relay = Relay(
            store, clock, fan_outs, batch=settings.batch, lease_seconds=settings.lease
        )
        self.workers = [
            Worker(store, clock, handlers, settings, consumer_name(number), metrics)
            for number in range(settings.threads)
        ]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._passes = 0

    def start(self) -> None:
        """Start the threads. The consumer group is made now if Redis answers; if not, the
        first worker's read makes it once Redis is back: a worker process still starts."""
        with contextlib.suppress(StoreUnavailableError):  # logged once by the store
            self._store.deliveries.create_group()
        block_ms = round(self._settings.poll_interval * 1000)
        self._threads = [
            threading.Thread(
                target=self._loop, args=(self.relay_pass, 0), name="outbox-relay", daemon=True
            ),
            *(
                threading.Thread(
                    target=self._loop,
                    args=(worker.run_once, block_ms),
                    name=f"outbox-worker-{number}",
                    daemon=True,
                )
                for number, worker in enumerate(self.workers)
            ),
        ]
        for thread in self._threads:
            thread.start()
        log.info(
            "Outbox relay and %d delivery worker(s) started",
            len(self.workers),
            extra={"event": "outbox.started"},
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every thread to stop after its current step and wait for them: an attempt
        under way finishes (or, cut short by the process's end, is claimed by another
        consumer after ``claim_timeout``)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def relay_pass(self, _: int = 0) -> int:
        """One pass of the relay thread: hand on announced entries, bring due retries
        back, and now and then measure the lag or drop consumers long gone."""
        moved = self.relay.run_once()
        self._store.deliveries.promote_due(self._settings.batch)
        if self._passes % MEASURE_EVERY == 0:
            self.measure()
        if self._passes % FORGET_CONSUMERS_EVERY == FORGET_CONSUMERS_EVERY - 1:
            self._store.deliveries.forget_idle_consumers(FORGET_CONSUMERS_IDLE_MS)
        self._passes += 1
        return moved

    def measure(self) -> int:
        """Set the lag gauge (and the entries by state); returns the lag in seconds."""
        now = self._clock.now()
        backlog = self._store.deliveries.backlog()
        overdue = (
            backlog.earliest_retry
            if backlog.earliest_retry is not None and backlog.earliest_retry <= now
            else None
        )
        waiting_since = [
            when
            for when in (self.relay.oldest_waiting, backlog.oldest_due, overdue)
            if when is not None
        ]
        lag = max(0, now - min(waiting_since)) if waiting_since else 0
        self._metrics.outbox_backlog(
            lag,
            {
                "waiting": backlog.in_stream - backlog.in_flight,
                "in_flight": backlog.in_flight,
                "retrying": backlog.retrying,
            },
        )
        return lag

    def _loop(self, step: Callable[[int], int], block_ms: int) -> None:
        """Run ``step`` until stopped. The relay pauses a poll interval after a pass that
        moved nothing (a worker's blocking read is its pause); either pauses after an
        outage (logged once by the store) or a bug (logged here), rather than spin."""
        while not self._stopping.is_set():
            try:
                done = step(block_ms)
            except StoreUnavailableError:
                done = -1
            except Exception:
                log.exception(
                    "The outbox's %s failed a pass",
                    threading.current_thread().name,
                    extra={"event": "outbox.pass_failed"},
                )
                done = -1
            if done < 0 or (block_ms == 0 and done == 0):
                self._stopping.wait(self._settings.poll_interval)
