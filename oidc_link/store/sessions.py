"""SSO sessions in Redis (by the cookie's digest), what each signed in to (by its sid), and
a person's sessions (by their email's digest). Losing one means signing in again; the
session rules (idle, absolute expiry) are sessions.py's, not this module's."""

from __future__ import annotations

from collections.abc import Sequence

from oidc_link.ids import digest
from oidc_link.models import SsoSession
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate, Writes


class SessionStore(Aggregate):
    def save(self, secret: str, session: SsoSession, *, writes: Writes | None = None) -> None:
        expires_at = min(session.idle_expiry, session.absolute_expiry)
        self._target(writes).set(
            keyspace.session(secret), session.to_record(), ex=self._ttl_until(expires_at)
        )

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

    def take_clients(self, sid: str, client_ids: Sequence[str]) -> list[str]:
        """Atomically forget some of a session's clients; those that were still there (of
        two concurrent sign-outs only one gets each, and notifies it)."""
        if not client_ids:
            return []
        key = keyspace.session_dependents(sid)
        pipeline = self._redis.pipeline(transaction=True)
        for client_id in client_ids:
            pipeline.srem(key, "client:" + client_id)
        removed = pipeline.execute()
        return [client_id for client_id, gone in zip(client_ids, removed, strict=True) if gone]

    def take_dependents(self, sid: str) -> tuple[list[str], list[str]]:
        """Atomically read and forget a session's clients and families, so that of two
        concurrent logouts only one notifies the clients."""
        key = keyspace.session_dependents(sid)
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.smembers(key)
        pipeline.delete(key)
        members, _ = pipeline.execute()
        clients = sorted(m.removeprefix("client:") for m in members if m.startswith("client:"))
        families = sorted(m.removeprefix("family:") for m in members if m.startswith("family:"))
        return clients, families

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
