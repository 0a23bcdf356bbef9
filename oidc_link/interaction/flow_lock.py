"""The per-flow lock a sign-in step runs under, so a double submit never sends a second SMS:
taken with the flow's read, released with the step's last writes, one round trip each, and
what else the step reads or writes rides along (rate counters, the sign-in's end). What the
step writes is the step's business; this module only carries it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from oidc_link.errors import FlowBusyError, FlowNotFoundError
from oidc_link.models import FinishedFlow, Flow
from oidc_link.store import Writes
from oidc_link.store.flows import FlowStore, Rider

# Longer than the slowest Link call we allow (timeouts plus retries).
LOCK_SECONDS = 60
LOCK_WAIT_SECONDS = 20.0
LOCK_POLL_SECONDS = 0.05


@dataclass
class HeldFlow:
    """A flow locked for one step: the flow as read under the lock (None: gone), and the
    write that ends the step (the flow's new state, or how it ended: the flow is then
    removed), sent with the lock's release. Each step's last store write is one of these
    two; ``writes`` (a batch of other aggregates' writes: a sign-in's session and code)
    and ``riders`` (say, a rate counter to refund) go in the same round trip."""

    flow: Flow | None
    save: Flow | None = None
    finished: FinishedFlow | None = None
    writes: Writes | None = None
    riders: list[Rider] = field(default_factory=list)
    # Whether the riders of the lock's round trip read under it: False when the lock was
    # another step's then (they were read before that step's writes, which may change them).
    riders_locked: bool = True


class locked:  # noqa: N801 - used as a function is: ``with locked(...) as held``
    """Hold the flow's lock for the block: the block gets the flow as read under the lock,
    in the same round trip as the lock (``riders`` too, answered once), and the write that
    ends the step goes with the lock's release, in one round trip too. Waits up to
    LOCK_WAIT_SECONDS for another step's lock (``sleep`` between polls), then
    FlowBusyError. A class rather than a generator: one step's lock costs two calls."""

    def __init__(
        self,
        flows: FlowStore,
        flow_id: str,
        sleep: Callable[[float], None],
        riders: Sequence[Rider] = (),
    ) -> None:
        self._flows, self._flow_id, self._sleep, self._riders = flows, flow_id, sleep, riders

    def __enter__(self) -> HeldFlow:
        flows, flow_id = self._flows, self._flow_id
        token, flow = flows.lock_and_load(flow_id, LOCK_SECONDS, self._riders)
        riders_locked = token is not None
        waited = 0.0
        while token is None and waited < LOCK_WAIT_SECONDS:
            self._sleep(LOCK_POLL_SECONDS)
            waited += LOCK_POLL_SECONDS
            token, flow = flows.lock_and_load(flow_id, LOCK_SECONDS)
        if token is None:
            raise FlowBusyError()
        self._token = token
        self._held = HeldFlow(flow, riders_locked=riders_locked)
        return self._held

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        held = self._held
        if kind is not None:
            held.writes = None  # a step that failed writes nothing of its own: dropped
        saved = self._flows.release(
            self._flow_id, self._token, held.save, held.finished, held.riders, batch=held.writes
        )
        if kind is None and held.save is not None and not saved:
            raise FlowNotFoundError()  # it ended or expired meanwhile, and stays gone
