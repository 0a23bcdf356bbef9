"""The per-flow lock a sign-in step runs under, so a double submit never sends a second SMS:
taken with the flow's read, released with the step's last write, one round trip each.
What the step writes is the step's business; this module only carries it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from oidc_link.errors import FlowBusyError, FlowNotFoundError
from oidc_link.models import FinishedFlow, Flow
from oidc_link.store.flows import FlowStore

# Longer than the slowest Link call we allow (timeouts plus retries).
LOCK_SECONDS = 60
LOCK_WAIT_SECONDS = 20.0
LOCK_POLL_SECONDS = 0.05


@dataclass
class HeldFlow:
    """A flow locked for one step: the flow as read under the lock (None: gone), and the
    write that ends the step (the flow's new state, or how it ended), sent with the lock's
    release. Each step's last store write is one of these two."""

    flow: Flow | None
    save: Flow | None = None
    finished: FinishedFlow | None = None


@contextmanager
def locked(flows: FlowStore, flow_id: str, sleep: Callable[[float], None]) -> Iterator[HeldFlow]:
    """Hold the flow's lock for the block: the block gets the flow as read under the lock,
    in the same round trip as the lock, and the write that ends the step goes with the
    lock's release, in one round trip too. Waits up to LOCK_WAIT_SECONDS for another
    step's lock (``sleep`` between polls), then FlowBusyError."""
    token, flow = flows.lock_and_load(flow_id, LOCK_SECONDS)
    waited = 0.0
    while token is None and waited < LOCK_WAIT_SECONDS:
        sleep(LOCK_POLL_SECONDS)
        waited += LOCK_POLL_SECONDS
        token, flow = flows.lock_and_load(flow_id, LOCK_SECONDS)
    if token is None:
        raise FlowBusyError()
    held = HeldFlow(flow)
    try:
        yield held
    finally:
        saved = flows.release(flow_id, token, held.save, held.finished)
    if held.save is not None and not saved:
        raise FlowNotFoundError()  # it ended or expired meanwhile, and stays gone
