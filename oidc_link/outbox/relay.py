"""The relay: moves entries from the aggregates' streams (store/outbox.py) to the delivery
stream (store/outbox_deliveries.py), running each kind's FanOut on the way, and forgets
streams that stayed empty. Every instance runs one; leases keep two off the same stream.

At least once: a stream's entries are appended to the delivery stream (one MULTI) before
they are deleted from their own, so a crash in between hands them on twice (each keeps its
stable ``id``), never loses them. One aggregate's entries are handed on in their stream's
order, under the stream's lease (``SET NX PX``, in the stream's slot).

The races of forgetting a stream, with a writer that announces it (ZADD GT, its clock's
time) and then XADDs to it:

- The relay reads the index (stream, score s), finds the stream empty, and s older than the
  grace. A writer announcing it after that read has moved its score past s (its time is
  later: s is a grace old), so the index's ZREM-if-score-is-still-s leaves it there.
- A writer announcing after the ZREM adds it again, so the stream is still found.
- The stream is deleted only if still empty, in one script in its slot: an entry XADDed
  since stays; one XADDed after the DEL makes the stream again, and its writer announced it.
- What the grace covers: a writer that announced the stream more than a grace ago and XADDs
  only now, after the index forgot it. The grace (60 s) is far longer than a write takes
  between its announce and its XADD (one request's round trips), and than the clock skew
  allowed between instances (``max_clock_skew``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from oidc_link.clock import Clock
from oidc_link.outbox.handling import FanOut
from oidc_link.store import Store
from oidc_link.store.outbox import OutboxEntry
from oidc_link.store.outbox_deliveries import Delivery

log = logging.getLogger(__name__)

# Seconds an empty stream stays in the index after its last announcement (see above).
FORGET_AFTER = 60
# Entries read from one stream at a time; a pass moves at most this many reads per stream,
# so that one busy aggregate does not hold the relay (the rest waits for the next pass).
ENTRIES_PER_READ = 100
READS_PER_PASS = 10


class Relay:
    """One instance's relay; ``run_once`` is one pass over a page of the index."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        fan_outs: Mapping[str, FanOut],
        *,
        batch: int = 100,
        lease_seconds: int = 30,
    ) -> None:
        self._store = store
        self._clock = clock
        self._fan_outs = dict(fan_outs)
        self._batch = batch
        self._lease_ms = lease_seconds * 1000
        self._holder = uuid.uuid4().hex
        # Where the next pass reads the index: a sweep a page at a time, so that streams
        # left in it for their grace never hide the newer ones behind them.
        self._start = 0
        # The oldest announcement of a stream this relay saw holding entries it could not
        # move on (another's lease, a FanOut's failure, an outage), for the lag gauge.
        self.oldest_waiting: int | None = None

    def run_once(self) -> int:
        """Look at the next page of the index; returns how many entries were handed on."""
        page = self._store.outbox.announced(self._start, self._batch)
        self._start = 0 if len(page) < self._batch else self._start + len(page)
        sizes = self._store.outbox.sizes([stream for stream, _ in page])
        now = self._clock.now()
        moved = 0
        oldest_waiting: int | None = None
        for (stream, announced_at), size in zip(page, sizes, strict=True):
            if size == 0:
                if now - announced_at > FORGET_AFTER:
                    self._store.outbox.forget(stream, announced_at)
                continue
            handed_on, emptied = self._move(stream)
            moved += handed_on
            if not emptied:
                oldest_waiting = min(oldest_waiting or announced_at, announced_at)
        self.oldest_waiting = oldest_waiting
        return moved

    def _move(self, stream: str) -> tuple[int, bool]:
        """Hand on ``stream``'s entries under its lease: how many, and whether it is empty."""
        if not self._store.outbox.lease(stream, self._holder, self._lease_ms):
            return 0, False  # another relay is moving it now
        moved = 0
        try:
            for _ in range(READS_PER_PASS):
                entries = self._store.outbox.entries(stream, ENTRIES_PER_READ)
                if not entries:
                    return moved, True
                deliveries = self._fanned_out([entry for _, entry in entries if entry is not None])
                if deliveries is None:
                    return moved, False
                self._store.deliveries.add(deliveries)
                self._store.outbox.taken(stream, [stream_id for stream_id, _ in entries])
                moved += len(entries)
                if len(entries) < ENTRIES_PER_READ:
                    # Read to its end: an entry written since is announced, and found by
                    # a later pass, so no read more to see it empty.
                    return moved, True
            return moved, False
        finally:
            self._store.outbox.release(stream, self._holder)

    def _fanned_out(self, entries: list[OutboxEntry]) -> list[Delivery] | None:
        """The deliveries ``entries`` become, in order; None when a FanOut failed (the
        entries stay, to be tried again next pass: a bug of the kind's, logged)."""
        now = self._clock.now()
        deliveries = []
        for entry in entries:
            fan_out = self._fan_outs.get(entry.kind)
            try:
                outgoing = [entry] if fan_out is None else fan_out(entry)
            except Exception as error:  # a kind's bug must not stop the relay
                log.error(
                    "An outbox entry could not be fanned out; it stays for the next pass",
                    extra={
                        "event": "outbox.fan_out_failed",
                        "kind": entry.kind,
                        "entry_id": entry.entry_id,
                        "error": type(error).__name__,
                    },
                )
                return None
            deliveries.extend(Delivery(one, attempt=1, due=now) for one in outgoing)
        return deliveries
