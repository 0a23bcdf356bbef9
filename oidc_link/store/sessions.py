"""SSO sessions in Redis (by the cookie's digest), what each signed in to (by its sid), and
a person's sessions (by their email's digest). Losing one means signing in again; the
session rules (idle, absolute expiry) are sessions.py's, not this module's. Taking a
session's clients writes their back-channel logout notice to the outbox in the same step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from oidc_link.clock import Clock
from oidc_link.ids import digest, new_id
from oidc_link.models import SsoSession
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate, Outages, Writes
from oidc_link.store.outbox import OutboxStore

# The outbox entry a logout writes (store/outbox.py): which session ended and, for each client
# to tell, the ``sub`` it knows the person by; the logout tokens are signed only when each is
# delivered. No email, no token: only what the clients are told anyway.
BACKCHANNEL_LOGOUT = "backchannel_logout"

# Take a session's clients and write their logout notice, as one step (so that of two
# concurrent logouts only one tells the clients, and a notice is never lost between the
# take and the write). KEYS[1]: the session's dependents set; KEYS[2]: its outbox stream
# (the same slot). ARGV[1]: the entry's id; ARGV[2]: the sid; ARGV[3]: n, how many client
# ids follow to take (0: take the whole set, families too, and delete it); then those n
# client ids; then pairs of a client to tell (one with a backchannel_logout_uri) and its
# ``sub``. Returns the members taken ("client:<id>", "family:<id>"). The entry names only
# taken clients that are told, and is written only when there is one: ``kind``, ``id``,
# ``body`` as OutboxEntry.fields spells them.
TAKE_AND_TELL = """
local count = tonumber(ARGV[3])
local taken = {}
if count == 0 then
  taken = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
else
  for i = 4, 3 + count do
    local member = 'client:' .. ARGV[i]
    if redis.call('SREM', KEYS[1], member) == 1 then
      taken[#taken + 1] = member
    end
  end
end
local subjects = {}
for i = 4 + count, #ARGV, 2 do
  subjects['client:' .. ARGV[i]] = ARGV[i + 1]
end
local told = {}
local any = false
for _, member in ipairs(taken) do
  if subjects[member] then
    told[string.sub(member, 8)] = subjects[member]
    any = true
  end
end
if any then
  local body = cjson.encode({sid = ARGV[2], subjects = told})
  redis.call('XADD', KEYS[2], '*', 'kind', 'backchannel_logout', 'id', ARGV[1], 'body', body)
end
return taken
"""


@dataclass(frozen=True)
class Taken:
    """What a logout took from a session: its clients and token families (sorted), and the
    id of the back-channel logout notice written for them (None: nobody to tell)."""

    client_ids: list[str]
    families: list[str]
    notice_id: str | None


class SessionStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._outbox = OutboxStore(client, clock, outages)
        self._take_and_tell = client.register_script(TAKE_AND_TELL)

    def save(self, secret: str, session: SsoSession, *, writes: Writes | None = None) -> None:
        expires_at = min(session.idle_expiry, session.absolute_expiry)
        self._target(writes).set(
            keyspace.session(secret), session.to_record(), ex=self._ttl_until(expires_at)
        )

    def save_new(
        self, secret: str, session: SsoSession, email: str, *, writes: Writes | None = None
    ) -> None:
        """``save``, then ``add_to_person`` (the same two writes, in that order), the
        secret digested once for the session's key and the person's set."""
        secret_digest = digest(secret)
        target = self._target(writes)
        expires_at = min(session.idle_expiry, session.absolute_expiry)
        target.set(
            keyspace.session_of_digest(secret_digest),
            session.to_record(),
            ex=self._ttl_until(expires_at),
        )
        key = keyspace.person_sessions(email)
        ttl = self._ttl_until(session.absolute_expiry)
        self._add_members(key, [secret_digest], ttl, "GT NX", writes)

    def load(self, secret: str) -> SsoSession | None:
        raw = self._redis.get(keyspace.session(secret))
        return SsoSession.from_record(raw) if raw else None

    def delete(self, secret: str) -> None:
        self._redis.delete(keyspace.session(secret))

    def delete_by_digest(self, session_digest: str) -> bool:
        return bool(self._redis.delete(keyspace.session_of_digest(session_digest)))

    def replace_by_digest(self, session_digest: str, session: SsoSession) -> bool:
        """Overwrite a live session, keeping its TTL (XX: an ended session stays ended)."""
        return bool(
            self._redis.set(
                keyspace.session_of_digest(session_digest),
                session.to_record(),
                xx=True,
                keepttl=True,
            )
        )

    # What a session signed in to, by its public sid: the clients it issued codes to (told
    # at logout, Back-Channel Logout 1.0 §2.5) and the token families to revoke with it
    # (§2.7). One set, "client:<id>" and "family:<id>" members, living as long as the
    # session can (its absolute expiry); losing it only means logout tells fewer clients.

    def remember_client(
        self,
        sid: str,
        client_id: str,
        session_expires_at: int,
        *,
        family_id: str | None = None,
        writes: Writes | None = None,
    ) -> None:
        """Remember the client, and with it the token family its code opens when that family
        ends with the session: one SADD and one EXPIRE for both (remember_family's EXPIRE NX
        would do nothing after this EXPIRE)."""
        key = keyspace.session_dependents(sid)
        members = ["client:" + client_id]
        if family_id is not None:
            members.append("family:" + family_id)
        self._add_members(key, members, self._ttl_until(session_expires_at), writes=writes)

    def remember_family(
        self, sid: str, family_id: str, fallback_ttl: int, *, writes: Writes | None = None
    ) -> None:
        """Bind a token family to its session. The set keeps the session's TTL; EXPIRE NX
        gives ``fallback_ttl`` only to a set that had to be created here (it was lost)."""
        key = keyspace.session_dependents(sid)
        self._add_members(key, ["family:" + family_id], fallback_ttl, "NX", writes)

    def clients(self, sids: Sequence[str]) -> list[list[str]]:
        """The clients each session signed in to, in the order of ``sids``: one round trip."""
        if not sids:
            return []
        pipeline = self._redis.pipeline(transaction=False)
        for sid in sids:
            pipeline.smembers(keyspace.session_dependents(sid))
        return [
            sorted(m.removeprefix("client:") for m in members if m.startswith("client:"))
            for members in pipeline.execute()
        ]

    def take_clients(
        self, sid: str, client_ids: Sequence[str], to_tell: Mapping[str, str]
    ) -> Taken:
        """Atomically forget some of a session's clients (a sector's sign-out) and write one
        logout notice for those of ``to_tell`` (client id -> its ``sub``) that were still
        there: of two concurrent sign-outs only one takes each client, and only that one
        tells it."""
        if not client_ids:
            return Taken([], [], None)
        return self._take(sid, list(client_ids), to_tell)

    def take_dependents(self, sid: str, to_tell: Mapping[str, str]) -> Taken:
        """Atomically read and forget a session's clients and families (the session ended)
        and write one logout notice for its clients of ``to_tell`` (client id -> its
        ``sub``): of two concurrent logouts only one takes them and tells the clients."""
        return self._take(sid, [], to_tell)

    def _take(self, sid: str, some: list[str], to_tell: Mapping[str, str]) -> Taken:
        key = keyspace.session_dependents(sid)
        notice_id = new_id("bcl")
        # Announced first (its own round trip): an entry is never in a stream the outbox's
        # relay cannot find. Skipped when no client could be told: the step writes none.
        stream = self._outbox.announce(key) if to_tell else keyspace.outbox(key)
        pairs = [part for client_id, sub in sorted(to_tell.items()) for part in (client_id, sub)]
        args = [notice_id, sid, len(some), *some, *pairs]
        members = self._take_and_tell(keys=[key, stream], args=args)
        clients = sorted(m.removeprefix("client:") for m in members if m.startswith("client:"))
        families = sorted(m.removeprefix("family:") for m in members if m.startswith("family:"))
        told = set(clients) & to_tell.keys()
        return Taken(clients, families, notice_id if told else None)

    # A person's SSO sessions, by their email's digest: the account page lists them and
    # "sign out everywhere" ends them. Members are the sessions' cookie digests; the set
    # lives as long as its newest session can; dead members are dropped when read.

    def add_to_person(
        self, email: str, secret: str, expires_at: int, *, writes: Writes | None = None
    ) -> None:
        key = keyspace.person_sessions(email)
        self._add_members(key, [digest(secret)], self._ttl_until(expires_at), "GT NX", writes)

    def of_person(self, email: str) -> list[tuple[str, SsoSession]]:
        """The live sessions (cookie digest, session) of a person, oldest first."""
        key = keyspace.person_sessions(email)
        members = sorted(self._redis.smembers(key))
        if not members:
            return []
        records = self._gets([keyspace.session_of_digest(member) for member in members])
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
