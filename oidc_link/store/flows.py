"""Pending sign-ins in Redis: flows, how they finished, and the lock held while Link is
called. Losing one means the user starts again. Knows records, not the steps' rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.ids import new_secret
from oidc_link.models import FinishedFlow, Flow
from oidc_link.store import keyspace
from oidc_link.store.base import FINISH_FLOW, RELEASE_LOCK, Aggregate, Outages, Rider, Writes


class FlowStore(Aggregate):
    """``tagged``: a sign-in's keys share its hash tag; False (the ``compatible`` key layout)
    names them as 1fcd0cc did, so that its instances can go on with a sign-in begun here."""

    def __init__(
        self, client: redis.Redis, clock: Clock, outages: Outages, *, tagged: bool = True
    ) -> None:
        super().__init__(client, clock, outages)
        self._tagged = tagged
        # Registering sends nothing: redis-py sends EVALSHA, and the script itself only when
        # the server does not know it yet (a new or restarted server, a failover).
        self._release_lock = client.register_script(RELEASE_LOCK)
        self._finish = client.register_script(FINISH_FLOW)

    def _flow(self, flow_id: str) -> str:
        return keyspace.flow(flow_id, tagged=self._tagged)

    def _finished(self, flow_id: str) -> str:
        return keyspace.finished_flow(flow_id, tagged=self._tagged)

    def _lock(self, flow_id: str) -> str:
        return keyspace.flow_lock(flow_id, tagged=self._tagged)

    def _flow_ttl(self, flow: Flow) -> int:
        return self._ttl_until(flow.expires_at) + keyspace.FLOW_AFTERLIFE

    def add(self, flow: Flow) -> None:
        _set(self._redis, self._flow(flow.id), flow.to_record(), self._flow_ttl(flow), "NX")

    def save(self, flow: Flow) -> bool:
        """Update a pending flow; False if it is gone (finished or expired) and stays gone.

        SET XX, so a late write from another request can never bring a finished flow back.
        """
        return bool(self._update(self._redis, flow))

    def _update(self, target: Any, flow: Flow) -> Any:
        return _set(target, self._flow(flow.id), flow.to_record(), self._flow_ttl(flow), "XX")

    def load(self, flow_id: str) -> Flow | None:
        raw = self._redis.get(self._flow(flow_id))
        return Flow.from_record(raw) if raw else None

    def take(self, flow_id: str) -> Flow | None:
        """Remove and return a flow, so that one sign-in completes at most once."""
        raw = self._redis.getdel(self._flow(flow_id))
        return Flow.from_record(raw) if raw else None

    def _finish_args(self, flow_id: str, record: FinishedFlow) -> tuple[list[str], list[Any]]:
        keys = [self._finished(flow_id), self._flow(flow_id)]
        return keys, [record.to_record(), keyspace.FLOW_AFTERLIFE]

    def end(self, flow_id: str, finished: FinishedFlow, *, writes: Writes) -> None:
        """Queue the flow's end (``finished`` kept in its place, as ``release`` does) in
        ``writes``, first: what the batch issues after it is issued once."""
        keys, args = self._finish_args(flow_id, finished)
        writes.script(self._finish, keys, args)

    def note_finished(self, flow_id: str, finished: FinishedFlow, *, writes: Writes) -> None:
        """Queue ``finished`` in place of what ``end`` kept (where the browser went, known
        only once the step's other writes are queued)."""
        keys, args = self._finish_args(flow_id, finished)
        _set(writes.pipeline, keys[0], args[0], args[1])

    def load_finished(self, flow_id: str) -> FinishedFlow | None:
        raw = self._redis.get(self._finished(flow_id))
        return FinishedFlow.from_record(raw) if raw else None

    def lock(self, flow_id: str, seconds: int) -> str | None:
        """Hold a flow while Link is called, so a double submit cannot send two SMS.

        Returns the lock's token, or None when another request holds it.
        """
        token = new_secret(12)
        if self._redis.set(self._lock(flow_id), token, nx=True, ex=seconds):
            return token
        return None

    def lock_and_load(
        self, flow_id: str, seconds: int, riders: Sequence[Rider] = ()
    ) -> tuple[str | None, Flow | None]:
        """``lock``, and the flow as it is once locked, in one round trip.

        The GET follows the SET NX in one pipeline: when the lock is ours, the flow was read
        under it. When it is not (None), the flow read is no one's business and is dropped.
        ``riders`` go in the same round trip, after those two, whoever holds the lock.
        """
        token = new_secret(12)
        pipeline = self._redis.pipeline(transaction=False)
        _set(pipeline, self._lock(flow_id), token, seconds, "NX")
        pipeline.get(self._flow(flow_id))
        sizes = [rider.queue(pipeline) for rider in riders]
        locked, raw, *others = pipeline.execute(raise_on_error=False)
        for result in (locked, raw):
            if isinstance(result, Exception):
                raise result
        _answer(riders, sizes, others)
        if not locked:
            return None, None
        return token, Flow.from_record(raw) if raw else None

    def unlock(self, flow_id: str, token: str) -> None:
        """Release our own lock only: if it timed out and another request took it, that one
        stays. Compared and deleted in one atomic step (a script)."""
        self._release_lock(keys=[self._lock(flow_id)], args=[token])

    def release(
        self,
        flow_id: str,
        token: str,
        save: Flow | None = None,
        finished: FinishedFlow | None = None,
        riders: Sequence[Rider] = (),
        batch: Writes | None = None,
    ) -> bool:
        """What ends a locked step, then ``unlock``, in one round trip: ``save`` as in
        ``save`` (the return value: False when it was gone), or ``finished`` kept for
        ``load_finished`` in place of the flow, which ends (as ``take``: under the lock,
        the flow read at ``lock_and_load`` is the one ended). Then ``riders``. ``batch``:
        one that holds the step's other writes, sent here, before these (its keys
        are elsewhere on a cluster: a plain pipeline, whose every command runs, so the lock
        goes even when a write is refused). Named apart from ``writes=``, which would mean
        "only queued": this sends."""
        lock = self._lock(flow_id)
        pipeline = batch.pipeline if batch is not None else self._redis.pipeline(transaction=False)
        before = len(pipeline)
        if save is not None:
            self._update(pipeline, save)
        if finished is not None:
            keys, args = self._finish_args(flow_id, finished)
            # EVALSHA by hand: a Script in a pipeline would first ask SCRIPT EXISTS.
            pipeline.evalsha(self._finish.sha, len(keys), *keys, *args)
        pipeline.evalsha(self._release_lock.sha, 1, lock, token)
        sizes = [rider.queue(pipeline) for rider in riders]
        results = pipeline.execute(raise_on_error=False)
        ours = len(results) - sum(sizes)
        *written, released = results[before:ours]
        if finished is not None and isinstance(written[-1], redis.exceptions.NoScriptError):
            keys, args = self._finish_args(flow_id, finished)
            written[-1] = self._finish(keys=keys, args=args)  # loads the script, then runs it
        if isinstance(released, redis.exceptions.NoScriptError):
            self._release_lock(keys=[lock], args=[token])
            released = None
        if batch is not None:
            batch.settle(results[:before])
        for result in [*written, released]:
            if isinstance(result, Exception):
                raise result
        _answer(riders, sizes, results[ours:])
        return save is None or bool(written[0])


def _set(target: Any, key: str, value: str, seconds: int, *condition: str) -> Any:
    """SET ``key`` for ``seconds`` (``condition``: NX or XX), as redis-py's ``set`` sends
    it, without the checks of its dozen options (each a few calls, on every step)."""
    return target.execute_command("SET", key, value, *condition, "EX", seconds)


def _answer(riders: Sequence[Rider], sizes: list[int], results: list[Any]) -> None:
    """Hand each rider the results of its own commands, in the order they were queued."""
    start = 0
    for rider, size in zip(riders, sizes, strict=True):
        rider.answer(results[start : start + size])
        start += size
