"""The platform's records in Redis: accounts and each owner's list of them, the email
index, Account Links and account-page sessions. Records are opaque text here: their shape
and rules are the platform modules'."""

from __future__ import annotations

from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate, Outages, Writes
from oidc_link.store.outbox import OutboxEntry, OutboxStore
from oidc_link.store.told import DELETE_AND_TELL, TELL, entry_args

# An account record written only if there is none: of two first sign-ins at once, the
# first record stays, and only the change that wrote it tells the outbox. Each script
# below tells first, then writes: Redis does not roll a script back, so an XADD it refuses
# leaves the change undone, and the write after it cannot fail on its key.
ADD_RECORD = TELL + (
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  tell(2)\n"
    "  redis.call('SET', KEYS[1], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n"
)

# An account record replaced only if it is still what the caller read (compare and set on
# one key): an update that raced another change reads again instead of overwriting it, and
# tells the outbox only when it writes.
SWAP_RECORD = TELL + (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  tell(3)\n"
    "  redis.call('SET', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n"
)


class AccountRead:
    """``AccountStore.for_email_and_record`` read ahead, in another aggregate's round trip
    (a rider of flows.py's ``lock_and_load``) rather than one of its own: the binding of
    ``email`` at ``owner`` and the account ``derived``. ``answered`` once it was read."""

    def __init__(self, owner: str, email: str, derived: str) -> None:
        self.owner = owner
        self.email = email
        self.derived = derived
        self.bound: str | None = None
        self.record: str | None = None
        self.answered = False

    def queue(self, pipeline: Any) -> int:
        # Two GETs, not an MGET: the email index and the account are apart on a cluster.
        pipeline.get(keyspace.account_email(self.owner, self.email))
        pipeline.get(keyspace.account(self.derived))
        return 2

    def answer(self, results: list[Any]) -> None:
        if not any(isinstance(found, Exception) for found in results):
            self.bound, self.record = results  # else unanswered: read again when needed
            self.answered = True


class AccountStore(Aggregate):
    # Accounts (the /v1 API): one record per account, and per owner (a client, or its
    # sector) a sorted set of account ids scored by creation time, for newest-first lists.
    # No TTL: an account is a durable record that a platform creates and deletes through
    # the API, like a customer row; expiring it would silently drop a platform's user.
    # Losing them means the platform's users onboard again (see the ops guide).
    # An account's record and its owner's list are apart on a cluster (the list holds many
    # accounts): written in one plain pipeline, record before list; lists are read with
    # their records, and a member whose record is gone is left out.

    # The changes that tell something (issue 18's events) write the record and the outbox
    # entry in one script: the stream is in the record's slot (keyspace.outbox), announced
    # first, one round trip of its own, only when there is an entry to write.

    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._outbox = OutboxStore(client, clock, outages)
        self._add_record = client.register_script(ADD_RECORD)
        self._swap_record = client.register_script(SWAP_RECORD)
        # An account deleted, told only by the delete that removes it (of two, one wins).
        self._delete_record = client.register_script(DELETE_AND_TELL)

    def add(
        self,
        owner: str,
        account_id: str,
        record: str,
        created: int,
        *,
        event: OutboxEntry | None = None,
        writes: Writes | None = None,
    ) -> None:
        """Store a new account (never over one already there) and put it in its owner's
        list; ``event`` is told only when this record is the one written."""
        batch = writes if writes is not None else self._batch()
        keys = self._told_keys(account_id, event)
        batch.script(self._add_record, keys, [record, *entry_args(event)])
        batch.pipeline.zadd(keyspace.accounts_of(owner), {account_id: created}, nx=True)
        if writes is None:
            batch.send()

    def load(self, account_id: str) -> str | None:
        return self._redis.get(keyspace.account(account_id))

    def replace(self, account_id: str, record: str) -> bool:
        """Overwrite an existing account record (XX: a deleted account stays deleted)."""
        return bool(self._redis.set(keyspace.account(account_id), record, xx=True))

    def swap(
        self, account_id: str, expected: str, record: str, event: OutboxEntry | None = None
    ) -> bool:
        """Replace the record only if it is still ``expected`` (what the caller read): False
        when it changed or was deleted in between. ``event`` (issue 18's account.updated)
        is written in this same step, only when the record is replaced: no update goes
        unannounced, and none is announced that did not happen."""
        keys = self._told_keys(account_id, event)
        args = [expected, record, *entry_args(event)]
        return bool(self._swap_record(keys=keys, args=args))

    def delete(self, owner: str, account_id: str, event: OutboxEntry | None = None) -> bool:
        """Forget an account; False when it was already gone (of two deletes, one wins, and
        only the winner tells ``event``)."""
        keys = self._told_keys(account_id, event)
        # The record first, as in add; the list only once that went through, so a delete
        # Redis refused leaves the account listed as well as stored.
        deleted = self._delete_record(keys=keys, args=entry_args(event))
        self._redis.zrem(keyspace.accounts_of(owner), account_id)
        return bool(deleted)

    def _batch(self) -> Writes:
        # A script and the owner's list in one round trip (Writes runs a script again if
        # Redis does not know it yet).
        return Writes(self._outages, self._redis.pipeline(transaction=False))

    def _told_keys(self, account_id: str, event: OutboxEntry | None) -> list[str]:
        """The record's key, and its outbox stream (announced now) when ``event`` is told."""
        key = keyspace.account(account_id)
        return [key] if event is None else [key, self._outbox.announce(key)]

    def page(
        self,
        owner: str,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> tuple[list[str], bool] | None:
        """Up to ``limit`` account records, newest first: those right after
        ``starting_after``, or right before ``ending_before`` (the newer ones, nearest it
        first to come last); and whether more follow in that direction. None when the
        cursor is not one of the owner's."""
        key = keyspace.accounts_of(owner)
        cursor = starting_after if starting_after is not None else ending_before
        rank = None
        if cursor is not None:
            rank = self._redis.zrevrank(key, cursor)
            if rank is None:
                return None
        if ending_before is not None and rank is not None:
            end = int(rank) - 1
            start = max(0, end + 1 - limit)
            if end < 0:
                return [], False
            ids = self._redis.zrevrange(key, start, end)
            more = start > 0
        else:
            start = 0 if rank is None else int(rank) + 1
            # One more than asked, to know whether another page follows.
            ids = self._redis.zrevrange(key, start, start + limit)
            more = len(ids) > limit
            ids = ids[:limit]
        records = self._gets([keyspace.account(account_id) for account_id in ids])
        return [record for record in records if record], more

    # Which account a verified email is at an owner, when it is not the derived id: set by
    # onboarding into a pre-created account and by an email change (no TTL, like accounts).

    def for_email(self, owner: str, email: str) -> str | None:
        return self._redis.get(keyspace.account_email(owner, email))

    def for_email_and_record(
        self, owner: str, email: str, account_id: str
    ) -> tuple[str | None, str | None]:
        """``for_email`` and ``load(account_id)``, in one round trip."""
        bound, record = self._gets(
            [keyspace.account_email(owner, email), keyspace.account(account_id)]
        )
        return bound, record

    def bind_email(self, owner: str, email: str, account_id: str) -> bool:
        """Point ``email`` at ``account_id``; False when it already points elsewhere."""
        key = keyspace.account_email(owner, email)
        if self._redis.set(key, account_id, nx=True):
            return True
        return self._redis.get(key) == account_id

    def unbind_email(self, owner: str, email: str, account_id: str) -> None:
        key = keyspace.account_email(owner, email)
        if self._redis.get(key) == account_id:
            self._redis.delete(key)

    # Account Links and Login Links (issue 6): the token's grant under the token's digest,
    # taken with GETDEL on the first visit; the public half (its refresh_url) under its id,
    # kept a day longer so that a dead one still finds its way back. Losing them means the
    # platform mints a new one.

    def save_account_link(
        self,
        account_link_id: str,
        public: str,
        token: str,
        grant: str,
        expires_at: int,
        afterlife: int,
    ) -> None:
        ttl = self._ttl_until(expires_at)
        # The public half first: a token without one is never handed out (a plain
        # pipeline: the two are apart on a cluster, and the token is what a visit takes).
        pipeline = self._redis.pipeline(transaction=False)
        pipeline.set(keyspace.account_link(account_link_id), public, ex=ttl + afterlife)
        pipeline.set(keyspace.account_link_token(token), grant, ex=ttl)
        pipeline.execute()

    def load_account_link(self, account_link_id: str) -> str | None:
        return self._redis.get(keyspace.account_link(account_link_id))

    def take_account_link_token(self, token: str) -> str | None:
        """Atomically consume an Account or Login Link's token: of two concurrent visits only
        one gets it."""
        return self._redis.getdel(keyspace.account_link_token(token))

    # Account-page sessions: what a Login Link's visit turns into (a cookie's digest ->
    # the account); losing one means asking the platform for a new Login Link.

    def save_session(self, secret: str, record: str, expires_at: int) -> None:
        self._redis.set(keyspace.account_session(secret), record, ex=self._ttl_until(expires_at))

    def load_session(self, secret: str) -> str | None:
        return self._redis.get(keyspace.account_session(secret))

    def delete_session(self, secret: str) -> None:
        self._redis.delete(keyspace.account_session(secret))
