"""What every aggregate store shares: Redis outages translated into StoreUnavailableError,
batched ``Writes``, TTLs from the injected clock, and the Lua scripts. Spells no key names
(keyspace.py does) and knows no record."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, Protocol, TypeVar

import redis

from oidc_link.clock import Clock
from oidc_link.errors import StoreUnavailableError

log = logging.getLogger("oidc_link.store")

# What counts as Redis being unreachable rather than as a bug: no connection (refused, reset,
# no master found by Sentinel, still loading its data set) or no answer in time; on Redis
# Cluster also no node reachable, a slot no node serves, CLUSTERDOWN (a failover under way),
# TRYAGAIN (a slot migrating) or redirections that never settle, each once redis-py's
# retries are spent. The first two are not RedisError, hence STORE_ERRORS.
OUTAGE_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.RedisClusterUnreachableError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
)
STORE_ERRORS = (
    redis.RedisError,
    redis.exceptions.RedisClusterUnreachableError,
    redis.exceptions.SlotNotCoveredError,
)
# Redis answering but refusing writes, which the callers meet like an outage (503, retry
# later); each has its cause, as StoreUnavailableError names them. Those redis-py has no
# class for are in REFUSAL_CODES.
REFUSAL_CAUSES: tuple[tuple[type[redis.RedisError], str], ...] = (
    (redis.exceptions.OutOfMemoryError, "out_of_memory"),
    (redis.exceptions.ReadOnlyError, "read_only"),
)
REFUSAL_WORDS = {
    "out_of_memory": "is out of memory (maxmemory reached)",
    "read_only": "is a read-only replica",
    "misconf": "cannot persist its data (MISCONF)",
    "no_replica": "has fewer replicas in sync than min-replicas-to-write (NOREPLICAS)",
}
# The refusals redis-py has no class for, by the code their message starts with. MISCONF: a
# failed save with stop-writes-on-bgsave-error, or a failing AOF. NOREPLICAS: a primary with
# min-replicas-to-write, cut off from its replicas (a failover would lose what it took).
REFUSAL_CODES = {"MISCONF": "misconf", "NOREPLICAS": "no_replica"}
# While writes keep being refused for one cause, it is logged again after this many seconds
# without a refusal: reads still succeed meanwhile, so success says nothing about writes.
REFUSAL_LOG_QUIET = 60

# Lua scripts, for the steps that must decide on the server to stay atomic in one round trip
# (Redis runs a script as one command: nothing else runs in between).

# A flow lock is released only by its holder: if it timed out and another request took it,
# that one stays. (GET then DEL from the client could delete a lock taken in between.)
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# A sign-in ends: how it finished (KEYS[1], ARGV[1], for ARGV[2] seconds) in place of its
# flow (KEYS[2]), as one step. A full Redis refuses the SET, the script's first write, and
# the flow stays for a retry: in a plain pipeline the DEL would still run, and lose it. NX:
# a note already there stays (the fuller one a step wrote after this script, which a server
# that did not know the script yet runs late; a flow ends once).
FINISH_FLOW = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
return redis.call('DEL', KEYS[2])
"""
# Fixed-window counters, one event each, in order: KEYS[i] is limit i's counter of the
# current window, ARGV[2i-1] the window (the key's TTL, set when the window's key is
# created, in the same atomic step), ARGV[2i] the limit. Stops at the first limit the event
# goes over and returns its position (0: none), so the later counters are not charged for
# an event that an earlier limit refused.
COUNT_WITHIN_LIMITS = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, ARGV[2 * i - 1])
  end
  if count > tonumber(ARGV[2 * i]) then
    return i
  end
end
return 0
"""
# Take back one event COUNT_WITHIN_LIMITS counted on KEYS[1], when that window's counter is
# still there: an expired one needs nothing back, and a DECR would make it again, no TTL.
REFUND_COUNT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""

# Add members ARGV[3], ... to set KEYS[1] and give it ARGV[1] seconds to live: always when
# ARGV[2] is '', else by each EXPIRE option it names ('NX': only a set without a TTL; 'GT
# NX': a longer life, or one for a set just made). One key's SADD and EXPIRE as one step, so
# a set never stays without its TTL, in a batch whose keys are on several slots (Writes).
ADD_MEMBERS = """
redis.call('SADD', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == '' then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
for option in string.gmatch(ARGV[2], '%S+') do
  redis.call('EXPIRE', KEYS[1], ARGV[1], option)
end
return 1
"""

# The sandbox Link's state (link/sandbox.py): one check of the ARGV[1]-th code sent in a
# session, right when ARGV[2] is '1'. A right code ends the session ('accepted'), as does
# the ARGV[3]-th wrong one of that code ('locked'); an ended session, or a code older than
# one already checked, is 'unknown'; a newer code starts its wrong attempts again. KEYS[1]
# holds "<code's number> <wrong attempts>", or "ended", for ARGV[4] seconds (the session's
# remaining life). One script: workers racing with the same or different codes each get a
# consistent answer.
CHECK_SANDBOX_CODE = """
local state = redis.call('GET', KEYS[1])
if state == 'ended' then
  return 'unknown'
end
local sent = tonumber(ARGV[1])
local attempts = 0
if state then
  local known, wrong = string.match(state, '^(%d+) (%d+)$')
  if sent < tonumber(known) then
    return 'unknown'
  end
  if sent == tonumber(known) then
    attempts = tonumber(wrong)
  end
end
local outcome = 'accepted'
if ARGV[2] ~= '1' then
  attempts = attempts + 1
  outcome = attempts >= tonumber(ARGV[3]) and 'locked' or 'wrong'
end
if outcome == 'wrong' then
  redis.call('SET', KEYS[1], sent .. ' ' .. attempts, 'EX', ARGV[4])
else
  redis.call('SET', KEYS[1], 'ended', 'EX', ARGV[4])
end
return outcome
"""

Method = TypeVar("Method", bound=Callable[..., Any])


def refusal_cause(error: Exception) -> str | None:
    """Why Redis refused a command it received, if it was a refusal to write."""
    for kind, cause in REFUSAL_CAUSES:
        if isinstance(error, kind):
            return cause
    if isinstance(error, redis.ResponseError):
        return REFUSAL_CODES.get(str(error).split(" ", 1)[0])
    return None


class Outages:
    """Redis's state as the aggregates of one Store meet it, shared so that an outage or a
    run of refused writes is logged once, whichever aggregate met it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # When the running outage began (by the clock), to log its start and end once
        # each rather than once per failed request.
        self._unreachable_since: int | None = None
        # The cause of the last refused write, and when (by the clock), to log a run of
        # refusals once rather than once per request.
        self._last_refusal: tuple[str, int] | None = None

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Raise StoreUnavailableError when Redis cannot be reached or refuses writes; note
        when it is reachable again."""
        try:
            yield
        except STORE_ERRORS as error:
            self.raise_translated(error)
        self.succeeded()

    def raise_translated(self, error: Exception) -> NoReturn:
        """``error`` as callers meet it: StoreUnavailableError for an outage or a refused
        write (noted once per run), else ``error`` itself (a bug of ours)."""
        if isinstance(error, OUTAGE_ERRORS):
            self._began(error)
            raise StoreUnavailableError(f"Redis is unreachable: {error}") from error
        cause = refusal_cause(error)
        if cause is None:
            raise error
        self._refused(cause, error)
        raise StoreUnavailableError(f"Redis refuses writes ({cause}): {error}", cause) from error

    def succeeded(self) -> None:
        """A command went through: an outage that was running has ended."""
        if self._unreachable_since is not None:
            self._ended()

    def _began(self, error: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = self._clock.now()
            log.error(
                "Redis is unreachable (%s): answering 503 until it is back",
                error,
                extra={"event": "redis.unreachable"},
            )

    def _refused(self, cause: str, error: Exception) -> None:
        now = self._clock.now()
        last, self._last_refusal = self._last_refusal, (cause, now)
        if last is not None and last[0] == cause and now - last[1] < REFUSAL_LOG_QUIET:
            return
        log.error(
            "Redis %s and refuses writes (%s): answering 503 to requests that write until "
            "it accepts them again",
            REFUSAL_WORDS[cause],
            error,
            extra={"event": "redis.refusing_writes", "cause": cause},
        )

    def _ended(self) -> None:
        since, self._unreachable_since = self._unreachable_since, None
        if since is not None:
            log.warning(
                "Redis is reachable again, after %d s",
                self._clock.now() - since,
                extra={"event": "redis.reachable", "outage_seconds": self._clock.now() - since},
            )


class Rider(Protocol):
    """Reads (or writes) of another aggregate that ride in a step's round trip: one of a
    locked step's two (flows.py ``lock_and_load``, ``release``), or a ``Writes`` batch's;
    queued after the step's own commands, answered in order."""

    def queue(self, pipeline: Any) -> int:
        """Queue the commands; how many were queued."""
        ...

    def answer(self, results: list[Any]) -> None:
        """Take the results of the commands queued (an error among them as an exception)."""
        ...


class Writes:
    """Writes of several store methods, queued and sent together: one round trip.

    A plain pipeline, not a MULTI: its keys belong to several aggregates, so on Redis
    Cluster to several hash slots, and a cluster runs a MULTI on one slot only. Each
    method's own write is one command or one script on one key (``script``), so none is
    left half-done (a set never without its TTL); the methods are queued in an order that
    fails closed (a record before the index that finds it; a sign-in's end before what it
    issues is relied on). Sent when the ``with`` block ends without an exception; dropped
    otherwise. Methods of any aggregate that take ``writes=`` can add to one batch; reads
    of other aggregates (``ride``) may join it, and it can be sent before the block ends
    (``send``) when a read's answer is needed.
    """

    def __init__(self, outages: Outages, pipeline: Any) -> None:
        self._outages = outages
        self.pipeline = pipeline
        # Queued reads, each with where its commands start in the pipeline and how many.
        self._riders: list[tuple[Rider, int, int]] = []
        # Queued scripts: where each is in the pipeline, and how to run it again.
        self._scripts: list[tuple[int, Any, list[str], list[Any]]] = []

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is not None:
            self.pipeline.reset()
            self._riders = []
            self._scripts = []
            return
        self.send()

    def ride(self, rider: Rider) -> None:
        """Queue ``rider``'s reads; it gets their answers when the batch is sent."""
        start = len(self.pipeline)
        self._riders.append((rider, start, rider.queue(self.pipeline)))

    def script(self, script: Any, keys: list[str], args: list[Any]) -> None:
        """Queue a registered script (a redis-py Script) on ``keys`` of one slot. EVALSHA
        by hand: a Script in a pipeline would first ask SCRIPT EXISTS, a round trip."""
        self._scripts.append((len(self.pipeline), script, keys, args))
        self.pipeline.evalsha(script.sha, len(keys), *keys, *args)

    def send(self) -> None:
        """Send what is queued now (one round trip), answer the riders, and raise the first
        refused write; the batch stays open for more."""
        if len(self.pipeline) == 0:
            return
        riders, self._riders = self._riders, []
        with self._outages.translated():
            results = self.pipeline.execute(raise_on_error=False)
            theirs: set[int] = set()
            for rider, start, size in riders:
                rider.answer(results[start : start + size])
                theirs.update(range(start, start + size))
            self.settle([None if i in theirs else r for i, r in enumerate(results)])

    def settle(self, results: list[Any]) -> None:
        """After the pipeline ran (``results``: the answers to this batch's commands, in
        order, perhaps more after them): run again each script Redis did not know yet (a
        new or restarted server, a failover; the Script loads it), then raise the first
        error."""
        scripts, self._scripts = self._scripts, []
        for index, script, keys, args in scripts:
            if isinstance(results[index], redis.exceptions.NoScriptError):
                results[index] = script(keys=keys, args=args)
        for result in results:
            if isinstance(result, Exception):
                raise result


def _outage_translated(method: Method) -> Method:
    """``method``, raising StoreUnavailableError when Redis cannot be reached."""

    @functools.wraps(method)
    def call(aggregate: Aggregate, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("writes") is not None:
            return method(aggregate, *args, **kwargs)  # only queued: Writes sends it
        # As Outages.translated(), without a context manager per call (every store call).
        try:
            result = method(aggregate, *args, **kwargs)
        except STORE_ERRORS as error:
            aggregate._outages.raise_translated(error)
        outages = aggregate._outages
        if outages._unreachable_since is not None:  # Outages.succeeded(), without its call
            outages.succeeded()
        return result

    return call  # type: ignore[return-value]


class Aggregate:
    """The base of each aggregate's store: its client, clock and shared outage state.

    Every public method of a subclass, including ones added later, is wrapped so that no
    caller needs to know redis-py's exceptions and no method needs a try/except of its own.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, _outage_translated(member))

    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        self._redis = client
        self._clock = clock
        self._outages = outages
        self._add_members_script = client.register_script(ADD_MEMBERS)

    def _add_members(
        self,
        key: str,
        members: list[str],
        ttl: int,
        expire_options: str = "",
        writes: Writes | None = None,
    ) -> None:
        """SADD ``members`` to set ``key`` and EXPIRE it (see ADD_MEMBERS) as one step: into
        ``writes``, else at once (one round trip)."""
        args: list[Any] = [ttl, expire_options, *members]
        if writes is not None:
            writes.script(self._add_members_script, [key], args)
        else:
            self._add_members_script(keys=[key], args=args)

    def _ttl_until(self, expires_at: int) -> int:
        # Expiry is computed from the injected clock, so tests with a fixed clock see the
        # same lifetimes as production; Redis still drops the key on its own.
        return max(1, expires_at - self._clock.now())

    def _gets(self, keys: list[str]) -> list[Any]:
        """GET each key, in one round trip: an MGET's keys must share a slot on a cluster,
        a pipeline's need not (the cluster client sends each node its own)."""
        if not keys:
            return []
        pipeline = self._redis.pipeline(transaction=False)
        for key in keys:
            pipeline.get(key)
        return pipeline.execute()

    def _target(self, writes: Writes | None) -> Any:
        """Where a one-command write goes: into ``writes``, else straight to Redis."""
        return writes.pipeline if writes is not None else self._redis
