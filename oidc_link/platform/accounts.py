"""Accounts: a platform's users as seen through the /v1 API, owned by a client or its sector.

Validates and stores accounts through the store; knows nothing of HTTP (the web layer's
``api`` module speaks the Stripe-shaped dialect on top of this).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace
from typing import Any

from oidc_link.clock import Clock
from oidc_link.ids import new_id
from oidc_link.platform.account_fields import (
    ACCOUNT_TYPES,
    AccountParameterError,
    checked_email,
    checked_metadata,
    merged_metadata,
)
from oidc_link.platform.events import (
    ACCOUNT_CREATED,
    ACCOUNT_DELETED,
    ACCOUNT_UPDATED,
    AUTOMATIC,
    Cause,
    Events,
    changed_attributes,
)
from oidc_link.platform.paging import UnknownStartingPointError
from oidc_link.store import Store, Writes
from oidc_link.store.accounts import AccountRead
from oidc_link.store.outbox import OutboxEntry

# Compare-and-set tries of one update before it gives up (each lost to a concurrent write).
UPDATE_ATTEMPTS = 5


@dataclass(frozen=True)
class Account:
    id: str
    owner: str
    created: int
    type: str
    email: str | None = None
    # True once a verified Link identity is bound (first sign-in, or onboarding).
    details_submitted: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    # The name Link gave at the last verification; shown on the hosted account page only.
    name: str | None = None

    def to_record(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "owner": self.owner,
                "created": self.created,
                "type": self.type,
                "email": self.email,
                "details_submitted": self.details_submitted,
                "metadata": self.metadata,
                "name": self.name,
            }
        )

    def shown(self) -> dict[str, Any]:
        """The account as ``GET /v1/accounts/{id}`` shows it (and its events' data.object)."""
        return {
            "id": self.id,
            "object": "account",
            "created": self.created,
            "type": self.type,
            "email": self.email,
            "details_submitted": self.details_submitted,
            "metadata": self.metadata,
        }

    @classmethod
    def from_record(cls, raw: str) -> Account:
        data = json.loads(raw)
        return cls(
            id=data["id"],
            owner=data["owner"],
            created=int(data["created"]),
            type=data["type"],
            email=data.get("email"),
            details_submitted=bool(data.get("details_submitted", False)),
            metadata=dict(data.get("metadata") or {}),
            name=data.get("name"),
        )


class Binding(enum.Enum):
    """How binding a verified identity to an account went."""

    BOUND = "bound"
    # The email is already some other account's at this owner (it signed in, or onboarded).
    EMAIL_TAKEN = "email_taken"
    # The account was deleted while its Account Link was being used.
    ACCOUNT_GONE = "account_gone"


@dataclass(frozen=True)
class AccountPage:
    accounts: list[Account]
    has_more: bool


class Accounts:
    """Each change that happens writes its event (platform/events.py) in the same step as
    the account's record: a change that does not happen (a lost compare-and-set, an update
    that changes nothing, a delete of nothing) writes none."""

    def __init__(self, store: Store, clock: Clock, subject_salt: str, events: Events) -> None:
        self._store = store
        self._clock = clock
        self._salt = subject_salt
        self._events = events

    def subject_of(self, owner: str, email: str) -> str:
        """The account id (the OIDC ``sub``) of a verified email at ``owner``: the account it
        onboarded into or moved to, else the id derived from the email."""
        bound = self._store.accounts.for_email(owner, email)
        return bound or sign_in_account_id(self._salt, owner, email)

    def bind(self, owner: str, account_id: str, email: str, name: str | None) -> Binding:
        """Onboarding or an update verified ``email`` for this account: from now on a
        sign-in with it at the owner's clients gives this account id as ``sub``."""
        raw = self._store.accounts.load(account_id)
        account = Account.from_record(raw) if raw is not None else None
        if account is None or account.owner != owner:
            return Binding.ACCOUNT_GONE
        email = email.lower()
        previous = account.email.lower() if account.details_submitted and account.email else None
        if email != previous:
            taken = self._taken_by_another(owner, email, account_id)
            if taken or not self._store.accounts.bind_email(owner, email, account_id):
                return Binding.EMAIL_TAKEN
            if previous is not None:
                self._store.accounts.unbind_email(owner, previous, account_id)
                if sign_in_account_id(self._salt, owner, previous) == account_id:
                    # The old email's derived id is this account: a later sign-in with the
                    # old email must not land here, so it gets an account of its own.
                    self._store.accounts.bind_email(owner, previous, new_id("acct", 16))
        # Compare and set, as ``update`` writes: a metadata change made meanwhile is read
        # again and kept, not overwritten. The account.updated event (details submitted,
        # email changed, name refreshed) is written with it; none when nothing changed.
        for _ in range(UPDATE_ATTEMPTS):
            updated = replace(account, email=email, name=name, details_submitted=True)
            if updated == account:
                return Binding.BOUND
            event = self._updated(account, updated, AUTOMATIC)
            if self._store.accounts.swap(account_id, raw, updated.to_record(), event):
                return Binding.BOUND
            raw = self._store.accounts.load(account_id)
            if raw is None:
                return Binding.ACCOUNT_GONE
            account = Account.from_record(raw)
        return Binding.ACCOUNT_GONE

    def _taken_by_another(self, owner: str, email: str, account_id: str) -> bool:
        """Whether ``email`` already has another account at ``owner``: one it onboarded
        into or moved to, or the one its first sign-in created."""
        current = self.subject_of(owner, email)
        return current != account_id and (
            self._store.accounts.for_email(owner, email) is not None
            or self._store.accounts.load(current) is not None
        )

    def create(
        self,
        owner: str,
        account_type: str | None,
        email: str | None = None,
        metadata: dict[str, str] | None = None,
        cause: Cause = AUTOMATIC,
    ) -> Account:
        """A new account for ``owner``; raises AccountParameterError before storing anything.
        Writes account.created with it."""
        if account_type is None or account_type == "":
            raise AccountParameterError(
                "type", "parameter_missing", "Missing required param: type."
            )
        if account_type not in ACCOUNT_TYPES:
            raise AccountParameterError(
                "type",
                "parameter_invalid_string",
                f"Invalid type: must be one of {', '.join(ACCOUNT_TYPES)}.",
            )
        if email is not None:
            email = checked_email(email)
        account = Account(
            id=new_id("acct", 16),
            owner=owner,
            created=self._clock.now(),
            type=account_type,
            email=email or None,
            metadata=checked_metadata(metadata or {}),
        )
        event = self._events.new(ACCOUNT_CREATED, owner, account.id, account.shown(), cause)
        self._store.accounts.add(
            owner, account.id, account.to_record(), account.created, event=event
        )
        return account

    def read_ahead(self, owner: str, email: str) -> AccountRead:
        """What ``sign_in`` reads first, to send in another step's round trip and hand it."""
        return AccountRead(owner, email, sign_in_account_id(self._salt, owner, email))

    def sign_in(
        self,
        owner: str,
        email: str,
        name: str | None,
        writes: Writes,
        ahead: AccountRead | None = None,
    ) -> str:
        """The account id (the OIDC ``sub``) of a user signing in at ``owner``'s clients, as
        ``subject_of`` gives it; on their first sign-in their account is created, queued
        into ``writes``: an ``express`` account whose details are the verified Link identity.

        One round trip unless the email is bound to another account than its derived one:
        the binding and the derived account are read together; none when ``ahead``
        (``read_ahead``) read them for this owner and email.
        """
        if ahead is not None and ahead.answered and (ahead.owner, ahead.email) == (owner, email):
            derived, bound, record = ahead.derived, ahead.bound, ahead.record
        else:
            derived = sign_in_account_id(self._salt, owner, email)
            bound, record = self._store.accounts.for_email_and_record(owner, email, derived)
        account_id = bound or derived
        if account_id != derived:
            record = self._store.accounts.load(account_id)
        if record is None:
            account = Account(
                id=account_id,
                owner=owner,
                created=self._clock.now(),
                type="express",
                email=email,
                details_submitted=True,
                name=name,
            )
            # SET NX inside: of two first sign-ins at once, the first record stays, and
            # only its account.created is written. Its outbox stream is announced now, one
            # round trip of a first sign-in only (before the queued write, as it must be).
            event = self._events.new(ACCOUNT_CREATED, owner, account.id, account.shown())
            self._store.accounts.add(
                owner,
                account.id,
                account.to_record(),
                account.created,
                event=event,
                writes=writes,
            )
        return account_id

    def update(
        self,
        owner: str,
        account_id: str,
        *,
        email: str | None = None,
        metadata: dict[str, Any] | None = None,
        unset_metadata: bool = False,
        cause: Cause = AUTOMATIC,
    ) -> Account | None:
        """Change the owner's account as Stripe's update does; None when there is no such
        account. ``email`` only before onboarding (afterwards it is the verified identity,
        which only the user changes, through an ``account_update`` Account Link).
        ``metadata`` merges into the account's: an empty value unsets its key;
        ``unset_metadata`` (``metadata=""``) first clears them all. Raises
        AccountParameterError before storing anything."""
        if email is not None:
            email = checked_email(email)
        for _ in range(UPDATE_ATTEMPTS):
            raw = self._store.accounts.load(account_id)
            if raw is None:
                return None
            account = Account.from_record(raw)
            if account.owner != owner:
                return None
            changed = account
            if email is not None and email != account.email and account.details_submitted:
                # The verified address itself (stored lowercased) is no change.
                if email.lower() != (account.email or "").lower():
                    raise AccountParameterError(
                        "email",
                        "account_invalid",
                        "This account's email was verified at onboarding and can no longer "
                        "be changed through the API: send the user an account_update "
                        "Account Link.",
                    )
            elif email is not None and email != account.email:
                if self._taken_by_another(owner, email.lower(), account_id):
                    raise AccountParameterError(
                        "email",
                        "resource_already_exists",
                        "Another account of yours already has this email (the user signed "
                        "in with it, or onboarded into that account).",
                    )
                changed = replace(changed, email=email)
            if metadata is not None or unset_metadata:
                base = {} if unset_metadata else account.metadata
                changed = replace(changed, metadata=merged_metadata(base, metadata or {}))
            if changed == account:
                return account
            # Compare and set: an onboarding (or another update) that wrote in between is
            # read again, never overwritten; account.updated (with the previous attributes
            # of ``account``) is written by the same step, only if it wins.
            event = self._updated(account, changed, cause)
            if self._store.accounts.swap(account_id, raw, changed.to_record(), event):
                return changed
        raise AccountParameterError(
            "account",
            "lock_timeout",
            "The account kept changing while it was being updated; retry the request.",
        )

    def find(self, owner: str, account_id: str) -> Account | None:
        """The owner's account, or None: another owner's account is as absent as none."""
        raw = self._store.accounts.load(account_id)
        if raw is None:
            return None
        account = Account.from_record(raw)
        return account if account.owner == owner else None

    def delete(self, owner: str, account_id: str, cause: Cause = AUTOMATIC) -> bool:
        """Delete the owner's account, with its account.deleted event (data.object: the
        account as it was, as Stripe's *.deleted events carry it); False when there was
        none to delete."""
        account = self.find(owner, account_id)
        if account is None:
            return False
        if account.email and account.details_submitted:
            self._store.accounts.unbind_email(owner, account.email, account_id)
        event = self._events.new(ACCOUNT_DELETED, owner, account_id, account.shown(), cause)
        return self._store.accounts.delete(owner, account_id, event)

    def _updated(self, before: Account, after: Account, cause: Cause) -> OutboxEntry:
        return self._events.new(
            ACCOUNT_UPDATED,
            after.owner,
            after.id,
            after.shown(),
            cause,
            previous_attributes=changed_attributes(before.shown(), after.shown()),
        )

    def page(
        self,
        owner: str,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AccountPage:
        """A page of the owner's accounts, newest first, after ``starting_after`` or before
        ``ending_before`` (one of them at most: the web layer refuses both)."""
        found = self._store.accounts.page(owner, limit, starting_after, ending_before)
        if found is None:
            if starting_after is not None:
                raise UnknownStartingPointError(starting_after)
            raise UnknownStartingPointError(ending_before or "", "ending_before")
        records, has_more = found
        return AccountPage([Account.from_record(raw) for raw in records], has_more)


def deleted_object(account_id: str) -> dict[str, Any]:
    """What Stripe answers a delete with."""
    return {"id": account_id, "object": "account", "deleted": True}


def sign_in_account_id(salt: str, owner: str, email: str) -> str:
    """The account id of a user who signs in at ``owner``'s clients: the OIDC ``sub``.

    Derived, not drawn at random: pairwise per owner (OIDC Core §8.1, unlinkable across
    owners without the salt) and the same after Redis loses the account record, so a
    relying party never sees its users change ``sub``.
    """
    mac = hmac.new(salt.encode(), f"{owner}\x00{email.lower()}".encode(), hashlib.sha256)
    return "acct_" + base64.b32encode(mac.digest()[:20]).decode().lower()
