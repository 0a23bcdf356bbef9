"""Every Redis key, TTL and command lives here, behind domain methods.

Bearer secrets (codes, tokens) are keyed by their SHA-256 digest; single-use things are
consumed with GETDEL (or in a script, atomic too); every key has a TTL unless a comment says
why not. Writes of several methods can share one round trip (``Store.writes``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from oidc_link.clock import Clock
from oidc_link.errors import StoreUnavailableError
from oidc_link.ids import digest, new_secret, same
from oidc_link.models import (
    AccessToken,
    AuthorizationCode,
    FinishedFlow,
    Flow,
    PendingLogout,
    PushedRequest,
    RefreshToken,
    SigningKey,
    SsoSession,
)

# Building the client (URL forms, TLS, Sentinel, timeouts, retries) is redis_connection's
# job; these names are re-exported for the callers that have always found them here.
from oidc_link.redis_connection import REDIS_RETRIES as REDIS_RETRIES
from oidc_link.redis_connection import REDIS_TIMEOUT as REDIS_TIMEOUT
from oidc_link.redis_connection import connect as connect

log = logging.getLogger(__name__)

PREFIX = "oidc-link:v1:"
# A flow outlives its expiry by this much, only so that a late visit can be told what
# happened and sent back to the right site instead of meeting a bare "not found".
FLOW_AFTERLIFE = 3600
# The two values of a token family's key (see "Token families" below).
FAMILY_LIVE = "live"
FAMILY_REVOKED = "revoked"
# What counts as Redis being unreachable rather than as a bug: no connection (refused, reset,
# no master found by Sentinel, still loading its data set) or no answer in time.
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError)
# Redis answering but refusing writes, which the callers meet like an outage (503, retry
# later); each has its cause, as StoreUnavailableError names them. MISCONF (a failed save
# with stop-writes-on-bgsave-error, or a failing AOF) has no class of its own in redis-py.
REFUSAL_CAUSES: tuple[tuple[type[redis.RedisError], str], ...] = (
    (redis.exceptions.OutOfMemoryError, "out_of_memory"),
    (redis.exceptions.ReadOnlyError, "read_only"),
)
REFUSAL_WORDS = {
    "out_of_memory": "is out of memory (maxmemory reached)",
    "read_only": "is a read-only replica",
    "misconf": "cannot persist its data (MISCONF)",
}
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
# Consume a code (KEYS[1]); when it was there, remember it as spent into family ARGV[1]
# (KEYS[2]) and open that family (KEYS[3], NX: a family revoked first stays revoked), both
# for ARGV[2] seconds. A code consumed twice at once is consumed once (RFC 6749 §4.1.2), and
# a replay finds the family to revoke (RFC 9700 §4.2.4). The SETs come before the DEL: a
# Redis out of memory refuses a script's first write that can grow memory but must let
# every later one run, so a DEL first would spend the code and then be made to go on.
TAKE_CODE = """
local record = redis.call('GET', KEYS[1])
if record then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2], 'NX')
  redis.call('DEL', KEYS[1])
end
return record
"""

# The sandbox's Link sessions (link/sandbox.py), a hash per session: email, code (its
# SHA-256: digests compare in Redis without leaking the code through timing), expires_at,
# attempts. Issue a code (ARGV[2], until ARGV[3]) to the session (KEYS[1]) only if it is
# the live session of email ARGV[1]; 1 when it was.
ISSUE_SANDBOX_CODE = """
if redis.call('HGET', KEYS[1], 'email') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'code', ARGV[2], 'expires_at', ARGV[3], 'attempts', 0)
return 1
"""
# Check code ARGV[2] ('' accepts any: the magic code) of email ARGV[1]'s session at time
# ARGV[3]; the session ends when the code is accepted or on the ARGV[4]-th wrong one. One
# script: workers racing with the same or different codes each get a consistent answer.
TRY_SANDBOX_CODE = """
local found = redis.call('HMGET', KEYS[1], 'email', 'code', 'expires_at')
if found[1] ~= ARGV[1] then
  return 'unknown'
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 'accepted'
end
if not found[2] or tonumber(found[3]) <= tonumber(ARGV[3]) then
  return 'expired'
end
if found[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 'accepted'
end
if redis.call('HINCRBY', KEYS[1], 'attempts', 1) >= tonumber(ARGV[4]) then
  redis.call('DEL', KEYS[1])
  return 'locked'
end
return 'wrong'
"""


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events of ``kind`` per ``subject`` in a fixed ``window`` (seconds)."""

    kind: str
    subject: str
    window: int
    limit: int


Method = TypeVar("Method", bound=Callable[..., Any])


def refusal_cause(error: redis.RedisError) -> str | None:
    """Why Redis refused a command it received, if it was a refusal to write."""
    for kind, cause in REFUSAL_CAUSES:
        if isinstance(error, kind):
            return cause
    if isinstance(error, redis.ResponseError) and str(error).startswith("MISCONF"):
        return "misconf"
    return None


@contextmanager
def _outages_translated(store: Store) -> Iterator[None]:
    """Raise StoreUnavailableError when Redis cannot be reached or refuses writes; note
    when it is reachable again."""
    try:
        yield
    except OUTAGE_ERRORS as error:
        store._outage_began(error)
        raise StoreUnavailableError(f"Redis is unreachable: {error}") from error
    except redis.ResponseError as error:
        cause = refusal_cause(error)
        if cause is None:
            raise
        store._writes_refused(cause, error)
        raise StoreUnavailableError(f"Redis refuses writes ({cause}): {error}", cause) from error
    if store._unreachable_since is not None:
        store._outage_ended()


def _outage_translated(method: Method) -> Method:
    """``method``, raising StoreUnavailableError when Redis cannot be reached."""

    @functools.wraps(method)
    def call(store: Store, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("writes") is not None:
            return method(store, *args, **kwargs)  # only queued: Writes sends it
        with _outages_translated(store):
            return method(store, *args, **kwargs)

    return call  # type: ignore[return-value]


def _sends_nothing(method: Method) -> Method:
    """Mark a public method that does not talk to Redis, so it is not taken for one that did."""
    method._sends_nothing = True  # type: ignore[attr-defined]
    return method


def _translating_outages(cls: type[Store]) -> type[Store]:
    """Wrap every public method, including ones added later, so that no caller needs to
    know redis-py's exceptions and no method needs a try/except of its own."""
    for name, member in list(vars(cls).items()):
        if (
            not name.startswith("_")
            and inspect.isfunction(member)
            and not getattr(member, "_sends_nothing", False)
        ):
            setattr(cls, name, _outage_translated(member))
    return cls


class Writes:
    """Writes of several store methods, queued and sent together: one round trip.

    Atomic (MULTI/EXEC, the default): all or nothing, so a set is never left without its TTL.
    Sent when the ``with`` block ends without an exception; dropped otherwise.
    """

    def __init__(self, store: Store, pipeline: Any) -> None:
        self._store = store
        self.pipeline = pipeline

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if kind is not None:
            self.pipeline.reset()
            return
        if len(self.pipeline) == 0:
            return
        with _outages_translated(self._store):
            self.pipeline.execute()


@_translating_outages
class Store:
    def __init__(self, client: redis.Redis, clock: Clock) -> None:
        self._redis = client
        self._clock = clock
        # When the running outage began (by the clock), to log its start and end once
        # each rather than once per failed request.
        self._unreachable_since: int | None = None
        # The cause of the last refused write, and when (by the clock), to log a run of
        # refusals once rather than once per request.
        self._last_refusal: tuple[str, int] | None = None
        # Registering sends nothing: redis-py sends EVALSHA, and the script itself only when
        # the server does not know it yet (a new or restarted server, a failover).
        self._release_lock = client.register_script(RELEASE_LOCK)
        self._count_within_limits = client.register_script(COUNT_WITHIN_LIMITS)
        self._take_code = client.register_script(TAKE_CODE)
        self._issue_sandbox_code = client.register_script(ISSUE_SANDBOX_CODE)
        self._try_sandbox_code = client.register_script(TRY_SANDBOX_CODE)

    def _outage_began(self, error: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = self._clock.now()
            log.error(
                "Redis is unreachable (%s): answering 503 until it is back",
                error,
                extra={"event": "redis.unreachable"},
            )

    def _writes_refused(self, cause: str, error: Exception) -> None:
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

    def _outage_ended(self) -> None:
        since, self._unreachable_since = self._unreachable_since, None
        if since is not None:
            log.warning(
                "Redis is reachable again, after %d s",
                self._clock.now() - since,
                extra={"event": "redis.reachable", "outage_seconds": self._clock.now() - since},
            )

    def _ttl_until(self, expires_at: int) -> int:
        # Expiry is computed from the injected clock, so tests with a fixed clock see the
        # same lifetimes as production; Redis still drops the key on its own.
        return max(1, expires_at - self._clock.now())

    # Writes of several methods in one round trip: each such method takes ``writes=``.

    @_sends_nothing
    def writes(self, atomic: bool = True) -> Writes:
        """Queue the writes of several methods (``writes=`` on each), sent together at the
        end of the ``with`` block; ``atomic=False`` for writes that need no MULTI/EXEC."""
        return Writes(self, self._redis.pipeline(transaction=atomic))

    def _target(self, writes: Writes | None) -> Any:
        """Where a one-command write goes: into ``writes``, else straight to Redis."""
        return writes.pipeline if writes is not None else self._redis

    @contextmanager
    def _transaction(self, writes: Writes | None) -> Iterator[Any]:
        """Where a write of several commands goes: into ``writes``, else a MULTI of its own,
        sent at once (all or nothing: a set never without its TTL)."""
        if writes is not None:
            yield writes.pipeline
            return
        pipeline = self._redis.pipeline(transaction=True)
        yield pipeline
        pipeline.execute()

    # Flows: pending sign-ins. Losing one means the user starts again.

    def add_flow(self, flow: Flow) -> None:
        self._redis.set(
            PREFIX + "flow:" + flow.id,
            flow.to_record(),
            ex=self._ttl_until(flow.expires_at) + FLOW_AFTERLIFE,
            nx=True,
        )

    def save_flow(self, flow: Flow) -> bool:
        """Update a pending flow; False if it is gone (finished or expired) and stays gone.

        SET XX, so a late write from another request can never bring a finished flow back.
        """
        return bool(self._update_flow(self._redis, flow))

    def _update_flow(self, target: Any, flow: Flow) -> Any:
        return target.set(
            PREFIX + "flow:" + flow.id,
            flow.to_record(),
            ex=self._ttl_until(flow.expires_at) + FLOW_AFTERLIFE,
            xx=True,
        )

    def load_flow(self, flow_id: str) -> Flow | None:
        raw = self._redis.get(PREFIX + "flow:" + flow_id)
        return Flow.from_record(raw) if raw else None

    def take_flow(self, flow_id: str) -> Flow | None:
        """Remove and return a flow, so that one sign-in completes at most once."""
        raw = self._redis.getdel(PREFIX + "flow:" + flow_id)
        return Flow.from_record(raw) if raw else None

    def _save_finished_flow(self, target: Any, flow_id: str, record: FinishedFlow) -> None:
        target.set(PREFIX + "flow_done:" + flow_id, record.to_record(), ex=FLOW_AFTERLIFE)

    def load_finished_flow(self, flow_id: str) -> FinishedFlow | None:
        raw = self._redis.get(PREFIX + "flow_done:" + flow_id)
        return FinishedFlow.from_record(raw) if raw else None

    def lock_flow(self, flow_id: str, seconds: int) -> str | None:
        """Hold a flow while Link is called, so a double submit cannot send two SMS.

        Returns the lock's token, or None when another request holds it.
        """
        token = new_secret(12)
        if self._redis.set(PREFIX + "flow_lock:" + flow_id, token, nx=True, ex=seconds):
            return token
        return None

    def lock_and_load_flow(self, flow_id: str, seconds: int) -> tuple[str | None, Flow | None]:
        """``lock_flow``, and the flow as it is once locked, in one round trip.

        The GET follows the SET NX in one pipeline: when the lock is ours, the flow was read
        under it. When it is not (None), the flow read is no one's business and is dropped.
        """
        token = new_secret(12)
        pipeline = self._redis.pipeline(transaction=False)
        pipeline.set(PREFIX + "flow_lock:" + flow_id, token, nx=True, ex=seconds)
        pipeline.get(PREFIX + "flow:" + flow_id)
        locked, raw = pipeline.execute()
        if not locked:
            return None, None
        return token, Flow.from_record(raw) if raw else None

    def unlock_flow(self, flow_id: str, token: str) -> None:
        """Release our own lock only: if it timed out and another request took it, that one
        stays. Compared and deleted in one atomic step (a script)."""
        self._release_lock(keys=[PREFIX + "flow_lock:" + flow_id], args=[token])

    def release_flow(
        self,
        flow_id: str,
        token: str,
        save: Flow | None = None,
        finished: FinishedFlow | None = None,
    ) -> bool:
        """What ends a locked step, then ``unlock_flow``, in one round trip: ``save`` as in
        ``save_flow`` (the return value: False when it was gone), ``finished``
        kept for ``load_finished_flow``. The writes run before the release, in this order."""
        lock = PREFIX + "flow_lock:" + flow_id
        pipeline = self._redis.pipeline(transaction=False)
        if save is not None:
            self._update_flow(pipeline, save)
        if finished is not None:
            self._save_finished_flow(pipeline, flow_id, finished)
        # EVALSHA by hand: a Script in a pipeline would first ask SCRIPT EXISTS, a round trip.
        pipeline.evalsha(self._release_lock.sha, 1, lock, token)
        *written, released = pipeline.execute(raise_on_error=False)
        for result in written:
            if isinstance(result, Exception):
                raise result
        if isinstance(released, redis.exceptions.NoScriptError):
            self._release_lock(keys=[lock], args=[token])  # loads the script, then runs it
        elif isinstance(released, Exception):
            raise released
        return save is None or bool(written[0])

    # SSO sessions: keyed by the cookie's digest; losing one means signing in again.

    def save_session(
        self, secret: str, session: SsoSession, *, writes: Writes | None = None
    ) -> None:
        expires_at = min(session.idle_expiry, session.absolute_expiry)
        self._target(writes).set(
            PREFIX + "session:" + digest(secret),
            session.to_record(),
            ex=self._ttl_until(expires_at),
        )

    def load_session(self, secret: str) -> SsoSession | None:
        raw = self._redis.get(PREFIX + "session:" + digest(secret))
        return SsoSession.from_record(raw) if raw else None

    def delete_session(self, secret: str) -> None:
        self._redis.delete(PREFIX + "session:" + digest(secret))

    # What a session signed in to, by its public sid: the clients it issued codes to (told
    # at logout, Back-Channel Logout 1.0 §2.5) and the token families to revoke with it
    # (§2.7). One set, "client:<id>" and "family:<id>" members, living as long as the
    # session can (its absolute expiry); losing it only means logout tells fewer clients.

    def remember_session_client(
        self,
        sid: str,
        client_id: str,
        session_expires_at: int,
        *,
        writes: Writes | None = None,
    ) -> None:
        key = PREFIX + "session_links:" + sid
        with self._transaction(writes) as pipeline:
            pipeline.sadd(key, "client:" + client_id)
            pipeline.expire(key, self._ttl_until(session_expires_at))

    def remember_session_family(
        self, sid: str, family_id: str, fallback_ttl: int, *, writes: Writes | None = None
    ) -> None:
        """Link a token family to its session. The set keeps the session's TTL; EXPIRE NX
        gives ``fallback_ttl`` only to a set that had to be created here (it was lost)."""
        key = PREFIX + "session_links:" + sid
        with self._transaction(writes) as pipeline:
            pipeline.sadd(key, "family:" + family_id)
            pipeline.expire(key, fallback_ttl, nx=True)

    def session_clients(self, sids: Sequence[str]) -> list[list[str]]:
        """The clients each session signed in to, in the order of ``sids``: one round trip."""
        if not sids:
            return []
        pipeline = self._redis.pipeline(transaction=False)
        for sid in sids:
            pipeline.smembers(PREFIX + "session_links:" + sid)
        return [
            sorted(m.removeprefix("client:") for m in members if m.startswith("client:"))
            for members in pipeline.execute()
        ]

    def take_session_clients(self, sid: str, client_ids: Sequence[str]) -> list[str]:
        """Atomically forget some of a session's clients; those that were still there (of
        two concurrent sign-outs only one gets each, and notifies it)."""
        if not client_ids:
            return []
        key = PREFIX + "session_links:" + sid
        pipeline = self._redis.pipeline(transaction=True)
        for client_id in client_ids:
            pipeline.srem(key, "client:" + client_id)
        removed = pipeline.execute()
        return [client_id for client_id, gone in zip(client_ids, removed, strict=True) if gone]

    def take_session_links(self, sid: str) -> tuple[list[str], list[str]]:
        """Atomically read and forget a session's clients and families, so that of two
        concurrent logouts only one notifies the clients."""
        key = PREFIX + "session_links:" + sid
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.smembers(key)
        pipeline.delete(key)
        members, _ = pipeline.execute()
        clients = sorted(m.removeprefix("client:") for m in members if m.startswith("client:"))
        families = sorted(m.removeprefix("family:") for m in members if m.startswith("family:"))
        return clients, families

    # Logout confirmations: answered once; losing one means the user asks again.

    def add_pending_logout(self, record: PendingLogout) -> None:
        self._redis.set(
            PREFIX + "logout:" + record.id,
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
            nx=True,
        )

    def load_pending_logout(self, logout_id: str) -> PendingLogout | None:
        raw = self._redis.get(PREFIX + "logout:" + logout_id)
        return PendingLogout.from_record(raw) if raw else None

    def take_pending_logout(self, logout_id: str) -> PendingLogout | None:
        raw = self._redis.getdel(PREFIX + "logout:" + logout_id)
        return PendingLogout.from_record(raw) if raw else None

    # Rate-limit counters: fixed windows; losing them only forgives a few requests.

    def count_event(self, kind: str, subject: str, window: int) -> int:
        """Count one event for ``subject`` in the current window and return the count."""
        index = self._clock.now() // window
        key = f"{PREFIX}rate:{kind}:{digest(subject)}:{index}"
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.incr(key)
        pipeline.expire(key, window + 1)
        count, _ = pipeline.execute()
        return int(count)

    def first_limit_reached(self, limits: Sequence[RateLimit]) -> RateLimit | None:
        """Count one event against each limit, in order, in one round trip; the first limit
        the event goes over, or None. The limits after that one are not counted: an event an
        earlier limit refused does not use up a later limit (a person over their own limit
        cannot spend a client's daily allowance). Same fixed windows as ``count_event``."""
        keys: list[str] = []
        args: list[int] = []
        now = self._clock.now()
        for limit in limits:
            index = now // limit.window
            keys.append(f"{PREFIX}rate:{limit.kind}:{digest(limit.subject)}:{index}")
            args += [limit.window + 1, limit.limit]
        reached = int(self._count_within_limits(keys=keys, args=args))
        return limits[reached - 1] if reached else None

    # Authorization codes: single use; a lost code only means the RP starts again.

    def save_code(
        self, code: str, record: AuthorizationCode, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            PREFIX + "code:" + digest(code),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def take_code(
        self, code: str, family_id: str, remember_for: int
    ) -> AuthorizationCode | None:
        """Consume a code, and in the same step remember it as spent into ``family_id`` and
        open that family (for ``remember_for`` seconds; ``extend_family`` lengthens it).

        One script, so atomic: of two concurrent redemptions only one gets the code, and a
        replay at any moment afterwards finds the family to revoke. An unknown code writes
        nothing.
        """
        key = digest(code)
        raw = self._take_code(
            keys=[
                PREFIX + "code:" + key,
                PREFIX + "code_spent:" + key,
                PREFIX + "family:" + family_id,
            ],
            args=[family_id, remember_for, FAMILY_LIVE],
        )
        return AuthorizationCode.from_record(raw) if raw else None

    # Access tokens: opaque, looked up by /userinfo.

    def save_access_token(
        self, token: str, record: AccessToken, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            PREFIX + "access_token:" + digest(token),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def load_access_token(self, token: str) -> AccessToken | None:
        raw = self._redis.get(PREFIX + "access_token:" + digest(token))
        return AccessToken.from_record(raw) if raw else None

    # Signing keys: no TTL, on purpose. A key must outlive every token it signed, and its
    # retirement is decided by the schedule in keys.py, which removes it explicitly.

    def load_keyring(self, alg: str) -> list[SigningKey]:
        raw = self._redis.hgetall(PREFIX + "keys:" + alg)
        return sorted((SigningKey.from_record(v) for v in raw.values()), key=lambda k: k.signs_from)

    def add_key(self, key: SigningKey) -> bool:
        """Store ``key`` in its slot unless the slot is taken: one winner among racing instances."""
        return bool(self._redis.hsetnx(PREFIX + "keys:" + key.alg, str(key.slot), key.to_record()))

    def remove_key(self, key: SigningKey) -> None:
        self._redis.hdel(PREFIX + "keys:" + key.alg, str(key.slot))

    # Which key rings this Redis has held: a hash, one field per algorithm, the time its ring
    # was first seen. No TTL, and kept when the ring empties: it is how keys.py tells a new
    # installation (no ring yet) from a ring that existed and is gone.

    def record_keyring(self, alg: str, since: int) -> None:
        self._redis.hsetnx(PREFIX + "keyrings", alg, since)

    def keyring_existed(self, alg: str) -> bool:
        return bool(self._redis.hexists(PREFIX + "keyrings", alg))

    def ping(self) -> bool:
        """One PING round trip; raises StoreUnavailableError when Redis cannot be reached."""
        return bool(self._redis.ping())

    def server_time(self) -> int:
        """Redis's clock (TIME), in whole seconds since the epoch: one round trip, which
        also tells that Redis answers (StoreUnavailableError when it does not)."""
        seconds, _microseconds = self._redis.time()
        return int(seconds)

    # Token families, refresh tokens and spent codes (RFC 9700 §4.14.2, §4.2.4).
    #
    # Every token issued from one authorization code, and every token refreshed from
    # those, belongs to one family. Token records carry the family id; ``family:<id>``
    # holds FAMILY_LIVE while the family may be used. Revoking writes FAMILY_REVOKED:
    # one SET, no scan. A token whose family key is missing counts as revoked too, so a
    # lost or evicted family key fails closed.

    def family_of_spent_code(self, code: str) -> str | None:
        return self._redis.get(PREFIX + "code_spent:" + digest(code))

    def extend_family(
        self, family_id: str, expires_at: int, *, writes: Writes | None = None
    ) -> None:
        """Keep the family key at least until ``expires_at`` (never shortens it)."""
        self._target(writes).expire(
            PREFIX + "family:" + family_id, self._ttl_until(expires_at), gt=True
        )

    def family_is_live(self, family_id: str) -> bool:
        return self._redis.get(PREFIX + "family:" + family_id) == FAMILY_LIVE

    def revoke_family(self, family_id: str, ttl: int) -> None:
        """Revoke every token of a family; remembered for ``ttl``, then the missing key
        still reads as revoked."""
        self._redis.set(PREFIX + "family:" + family_id, FAMILY_REVOKED, ex=ttl)

    def save_refresh_token(
        self, token: str, record: RefreshToken, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            PREFIX + "refresh_token:" + digest(token),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def load_refresh_token(self, token: str) -> tuple[RefreshToken | None, int | None]:
        """The record, and when it was rotated (None while it is unused)."""
        key = digest(token)
        raw, used = self._redis.mget(
            [PREFIX + "refresh_token:" + key, PREFIX + "refresh_used:" + key]
        )
        if not raw:
            return None, None
        return RefreshToken.from_record(raw), int(used) if used else None

    def mark_refresh_token_used(self, token: str, record: RefreshToken) -> int | None:
        """Atomically mark a refresh token as rotated now.

        Returns None for the first use, else when the first use happened: of two
        concurrent refreshes exactly one is first (SET NX).
        """
        key = PREFIX + "refresh_used:" + digest(token)
        now = self._clock.now()
        # SET NX GET: sets only when unset, and answers what was there (None: we were first).
        used = self._redis.set(
            key, str(now), nx=True, ex=self._ttl_until(record.expires_at), get=True
        )
        return int(used) if used is not None else None

    def revoke_access_token(self, token: str) -> None:
        self._redis.delete(PREFIX + "access_token:" + digest(token))

    # Consents: scopes a user allowed a third-party client, one hash per (client, user) whose
    # fields are scopes and values the epoch second each grant ends. Losing one only means
    # the consent page is shown again.

    def load_consent(self, user: str, client_id: str) -> dict[str, int]:
        raw = self._redis.hgetall(f"{PREFIX}consent:{client_id}:{user}")
        return {scope: int(until) for scope, until in raw.items()}

    def add_consent(
        self, user: str, client_id: str, scopes: dict[str, int], expires_at: int
    ) -> None:
        """Add (or renew) scopes in one transaction; the key lives until ``expires_at``."""
        if not scopes:
            return
        key = f"{PREFIX}consent:{client_id}:{user}"
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.hset(key, mapping={scope: str(until) for scope, until in scopes.items()})
        pipeline.expire(key, self._ttl_until(expires_at))
        pipeline.execute()

    def delete_consent(self, user: str, client_id: str) -> None:
        self._redis.delete(f"{PREFIX}consent:{client_id}:{user}")

    # Client assertion ids (RFC 7523 §3 item 7, OIDC Core §9): a private_key_jwt assertion
    # is accepted once. Losing these only reopens a replay window as short as the assertion.

    def remember_assertion_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record a client's assertion ``jti`` until ``expires_at``; False if already seen.

        SET NX: of two requests carrying the same assertion exactly one gets True.
        """
        key = PREFIX + "assertion_jti:" + digest(client_id + "\x00" + jti)
        return bool(self._redis.set(key, "1", nx=True, ex=self._ttl_until(expires_at)))

    # Pushed authorization requests (RFC 9126): keyed by the request_uri's digest,
    # short-lived and used once (§4); losing one means the RP pushes again.

    def save_pushed_request(self, request_uri: str, record: PushedRequest) -> None:
        self._redis.set(
            PREFIX + "pushed:" + digest(request_uri),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
            nx=True,
        )

    def take_pushed_request(self, request_uri: str) -> PushedRequest | None:
        """Atomically consume a pushed request: of two uses only one gets it."""
        raw = self._redis.getdel(PREFIX + "pushed:" + digest(request_uri))
        return PushedRequest.from_record(raw) if raw else None

    # Accounts (the /v1 API): one record per account, and per owner (a client, or its
    # sector) a sorted set of account ids scored by creation time, for newest-first lists.
    # No TTL: an account is a durable record that a platform creates and deletes through
    # the API, like a customer row; expiring it would silently drop a platform's user.
    # Losing them means the platform's users onboard again (see the ops guide).

    def add_account(
        self,
        owner: str,
        account_id: str,
        record: str,
        created: int,
        *,
        writes: Writes | None = None,
    ) -> None:
        with self._transaction(writes) as pipeline:
            pipeline.set(PREFIX + "account:" + account_id, record, nx=True)
            pipeline.zadd(PREFIX + "accounts_of:" + owner, {account_id: created}, nx=True)

    def load_account(self, account_id: str) -> str | None:
        return self._redis.get(PREFIX + "account:" + account_id)

    def delete_account(self, owner: str, account_id: str) -> bool:
        """Forget an account; False when it was already gone (of two deletes, one wins)."""
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.delete(PREFIX + "account:" + account_id)
        pipeline.zrem(PREFIX + "accounts_of:" + owner, account_id)
        deleted, _ = pipeline.execute()
        return bool(deleted)

    def account_page(
        self, owner: str, limit: int, starting_after: str | None
    ) -> tuple[list[str], bool] | None:
        """Up to ``limit`` account records, newest first, after ``starting_after``; and
        whether more follow. None when ``starting_after`` is not one of the owner's."""
        key = PREFIX + "accounts_of:" + owner
        start = 0
        if starting_after is not None:
            rank = self._redis.zrevrank(key, starting_after)
            if rank is None:
                return None
            start = int(rank) + 1
        # One more than asked, to know whether another page follows.
        ids = self._redis.zrevrange(key, start, start + limit)
        page = ids[:limit]
        records = self._redis.mget([PREFIX + "account:" + account_id for account_id in page])
        return [record for record in records if record], len(ids) > limit

    # Idempotency keys (the /v1 API): per API key (its digest) and Idempotency-Key (its
    # digest, as it is the client's choice of text), first an in-flight marker with a short
    # TTL (SET NX: of two concurrent requests one runs), then the stored response for 24 h.

    def _idempotency_key(self, scope: str, key: str) -> str:
        return PREFIX + "idempotency:" + scope + ":" + digest(key)

    def claim_idempotency_key(self, scope: str, key: str, record: str, seconds: int) -> bool:
        return bool(
            self._redis.set(self._idempotency_key(scope, key), record, nx=True, ex=seconds)
        )

    def load_idempotency_record(self, scope: str, key: str) -> str | None:
        return self._redis.get(self._idempotency_key(scope, key))

    def save_idempotency_record(self, scope: str, key: str, record: str, seconds: int) -> None:
        self._redis.set(self._idempotency_key(scope, key), record, ex=seconds)

    def release_idempotency_key(self, scope: str, key: str, record: str) -> None:
        """Drop an in-flight marker, only if it is still the one this request set."""
        name = self._idempotency_key(scope, key)
        held = self._redis.get(name)
        if held is not None and same(held, record):
            self._redis.delete(name)

    # Account Links and Login Links (issue 6): the token's grant under the token's digest,
    # taken with GETDEL on the first visit; the link's public half (its refresh_url) under
    # its id, kept a day longer so that a dead link still finds its way back. Losing them
    # means the platform mints a new link.

    def save_link(
        self,
        link_id: str,
        public: str,
        token: str,
        grant: str,
        expires_at: int,
        afterlife: int,
    ) -> None:
        ttl = self._ttl_until(expires_at)
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.set(PREFIX + "link:" + link_id, public, ex=ttl + afterlife)
        pipeline.set(PREFIX + "link_token:" + digest(token), grant, ex=ttl)
        pipeline.execute()

    def load_link(self, link_id: str) -> str | None:
        return self._redis.get(PREFIX + "link:" + link_id)

    def take_link_token(self, token: str) -> str | None:
        """Atomically consume a link's token: of two concurrent visits only one gets it."""
        return self._redis.getdel(PREFIX + "link_token:" + digest(token))

    # Account-page sessions: what a Login Link's visit turns into (a cookie's digest ->
    # the account); losing one means asking the platform for a new Login Link.

    def save_account_session(self, secret: str, record: str, expires_at: int) -> None:
        self._redis.set(
            PREFIX + "account_session:" + digest(secret),
            record,
            ex=self._ttl_until(expires_at),
        )

    def load_account_session(self, secret: str) -> str | None:
        return self._redis.get(PREFIX + "account_session:" + digest(secret))

    def delete_account_session(self, secret: str) -> None:
        self._redis.delete(PREFIX + "account_session:" + digest(secret))

    # Which account a verified email is at an owner, when it is not the derived id: set by
    # onboarding into a pre-created account and by an email change (no TTL, like accounts).

    def _email_index(self, owner: str, email: str) -> str:
        return PREFIX + "account_email:" + owner + ":" + digest(email.lower())

    def account_for_email(self, owner: str, email: str) -> str | None:
        return self._redis.get(self._email_index(owner, email))

    def account_for_email_and_record(
        self, owner: str, email: str, account_id: str
    ) -> tuple[str | None, str | None]:
        """``account_for_email`` and ``load_account(account_id)``, in one round trip."""
        bound, record = self._redis.mget(
            [self._email_index(owner, email), PREFIX + "account:" + account_id]
        )
        return bound, record

    def bind_account_email(self, owner: str, email: str, account_id: str) -> bool:
        """Point ``email`` at ``account_id``; False when it already points elsewhere."""
        key = self._email_index(owner, email)
        if self._redis.set(key, account_id, nx=True):
            return True
        return self._redis.get(key) == account_id

    def unbind_account_email(self, owner: str, email: str, account_id: str) -> None:
        key = self._email_index(owner, email)
        if self._redis.get(key) == account_id:
            self._redis.delete(key)

    def replace_account(self, account_id: str, record: str) -> bool:
        """Overwrite an existing account record (XX: a deleted account stays deleted)."""
        return bool(self._redis.set(PREFIX + "account:" + account_id, record, xx=True))

    # A person's SSO sessions, by their email's digest: the account page lists them and
    # "sign out everywhere" ends them. Members are the sessions' cookie digests; the set
    # lives as long as its newest session can; dead members are dropped when read.

    def add_person_session(
        self, email: str, secret: str, expires_at: int, *, writes: Writes | None = None
    ) -> None:
        key = PREFIX + "person_sessions:" + digest(email.lower())
        with self._transaction(writes) as pipeline:
            pipeline.sadd(key, digest(secret))
            pipeline.expire(key, self._ttl_until(expires_at), gt=True)
            pipeline.expire(key, self._ttl_until(expires_at), nx=True)

    def person_sessions(self, email: str) -> list[tuple[str, SsoSession]]:
        """The live sessions (cookie digest, session) of a person, oldest first."""
        key = PREFIX + "person_sessions:" + digest(email.lower())
        members = sorted(self._redis.smembers(key))
        if not members:
            return []
        records = self._redis.mget([PREFIX + "session:" + member for member in members])
        found = []
        gone = []
        for member, raw in zip(members, records, strict=True):
            if raw:
                found.append((member, SsoSession.from_record(raw)))
            else:
                gone.append(member)
        if gone:
            self._redis.srem(key, *gone)
        return sorted(found, key=lambda pair: pair[1].created_at)

    def delete_session_by_digest(self, session_digest: str) -> bool:
        return bool(self._redis.delete(PREFIX + "session:" + session_digest))

    def replace_session_by_digest(self, session_digest: str, session: SsoSession) -> bool:
        """Overwrite a live session, keeping its TTL (XX: an ended session stays ended)."""
        return bool(
            self._redis.set(
                PREFIX + "session:" + session_digest, session.to_record(), xx=True, keepttl=True
            )
        )

    # Token families issued for an account (its sub): revoked by "sign out everywhere".
    # The set lives as long as its newest family can.

    def remember_account_family(
        self, account_id: str, family_id: str, ttl: int, *, writes: Writes | None = None
    ) -> None:
        key = PREFIX + "account_families:" + account_id
        with self._transaction(writes) as pipeline:
            pipeline.sadd(key, family_id)
            pipeline.expire(key, ttl)

    def take_account_families(self, account_id: str) -> list[str]:
        key = PREFIX + "account_families:" + account_id
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.smembers(key)
        pipeline.delete(key)
        members, _ = pipeline.execute()
        return sorted(members)

    # The sandbox's Link sessions (link/sandbox.py SandboxSessions), by their client
    # secret's digest, so every worker and instance can take any step; losing one means
    # that sign-in starts again. Sandbox only: the live Link keeps its own sessions.

    def open_sandbox_session(self, secret: str, email: str, ttl: int) -> None:
        key = PREFIX + "sandbox_session:" + digest(secret)
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.hset(key, mapping={"email": email, "attempts": 0})
        pipeline.expire(key, ttl)
        pipeline.execute()

    def sandbox_session_email(self, secret: str) -> str | None:
        return self._redis.hget(PREFIX + "sandbox_session:" + digest(secret), "email")

    def issue_sandbox_code(self, secret: str, email: str, code: str, expires_at: int) -> bool:
        key = PREFIX + "sandbox_session:" + digest(secret)
        return bool(self._issue_sandbox_code(keys=[key], args=[email, digest(code), expires_at]))

    def try_sandbox_code(
        self, secret: str, email: str, code: str | None, now: int, max_attempts: int
    ) -> str:
        """One of link/sandbox.py's CodeOutcome values (see TRY_SANDBOX_CODE)."""
        key = PREFIX + "sandbox_session:" + digest(secret)
        outcome = self._try_sandbox_code(
            keys=[key], args=[email, digest(code) if code is not None else "", now, max_attempts]
        )
        return outcome.decode() if isinstance(outcome, bytes) else outcome
