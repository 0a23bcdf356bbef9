"""Events (issue 18 item 1): what changed in a platform's accounts, as Stripe's event
objects, built here for the change to write to the outbox, and read back from the events
store for ``GET /v1/events``. Knows nothing of HTTP or of delivery."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings
from oidc_link.ids import new_id
from oidc_link.platform.paging import UnknownStartingPointError
from oidc_link.store import Store
from oidc_link.store.events import EventWindow
from oidc_link.store.outbox import OutboxEntry

ACCOUNT_CREATED = "account.created"
ACCOUNT_UPDATED = "account.updated"
ACCOUNT_DELETED = "account.deleted"
APPLICATION_DEAUTHORIZED = "account.application.deauthorized"
SESSIONS_REVOKED = "account.sessions.revoked"
EVENT_TYPES = (
    ACCOUNT_CREATED,
    ACCOUNT_UPDATED,
    ACCOUNT_DELETED,
    APPLICATION_DEAUTHORIZED,
    SESSIONS_REVOKED,
)
# The outbox entry kind of an event (store/outbox.py's OutboxEntry.kind).
EVENT_KIND = "event"
# Kept out of the object /v1 shows: who the event is routed to, not what happened.
ROUTING_FIELDS = ("owner", "client_ids")


@dataclass(frozen=True)
class Cause:
    """What made a change, as Stripe's ``request`` member tells it: the /v1 request's id
    and Idempotency-Key; both None for a change the user made on a hosted page or at
    sign-in (Stripe's "automatic": no API request of the platform's to point at)."""

    request_id: str | None = None
    idempotency_key: str | None = None


AUTOMATIC = Cause()


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    has_more: bool


class Events:
    """Builds the events of account changes and reads those the events store kept.

    An event names its ``owner`` (the account's: a client, or a sector), and who may see
    it is decided from that owner when it is read, as for accounts: a client that joins a
    sector later sees the sector's events as it sees its accounts. ``client_ids`` is the
    same owner resolved when the change happened, for the webhooks' fan-out (who had
    endpoints to tell then)."""

    def __init__(self, store: Store, clock: Clock, clients: Sequence[ClientSettings] = ()) -> None:
        self._store = store
        self._clock = clock
        self._clients = clients

    def new(
        self,
        event_type: str,
        owner: str,
        account_id: str,
        shown: dict[str, Any],
        cause: Cause = AUTOMATIC,
        previous_attributes: dict[str, Any] | None = None,
    ) -> OutboxEntry:
        """The outbox entry of one event: ``shown`` is ``data.object`` (the account as
        ``GET /v1/accounts/{id}`` shows it after the change, or what Stripe's type puts
        there); ``previous_attributes`` only for ``account.updated``."""
        event_id = new_id("evt", 16)
        data: dict[str, Any] = {"object": shown}
        if event_type == ACCOUNT_UPDATED:
            data["previous_attributes"] = previous_attributes or {}
        body = {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": self._clock.now(),
            # Stripe's Connect events name the connected account they are about.
            "account": account_id,
            "data": data,
            "request": {"id": cause.request_id, "idempotency_key": cause.idempotency_key},
            "owner": owner,
            "client_ids": self.clients_of(owner),
        }
        return OutboxEntry(EVENT_KIND, event_id, body)

    def deauthorized(
        self, account_id: str, client_id: str, cause: Cause = AUTOMATIC
    ) -> OutboxEntry:
        """account.application.deauthorized: as Stripe's, its data.object is the
        application (the client) the user removed; the account is the event's ``account``."""
        client = next((c for c in self._clients if c.client_id == client_id), None)
        owner = client.subject_sector if client is not None else client_id
        name = client.display_name if client is not None else None
        application = {"id": client_id, "object": "application", "name": name}
        return self.new(APPLICATION_DEAUTHORIZED, owner, account_id, application, cause)

    def clients_of(self, owner: str) -> list[str]:
        """Every configured client whose accounts ``owner``'s are (its sector's, or itself)."""
        return sorted(c.client_id for c in self._clients if c.subject_sector == owner)

    def find(self, owner: str, event_id: str) -> dict[str, Any] | None:
        """The owner's event as /v1 shows it, or None: another owner's is as absent as none."""
        raw = self._store.events.load(event_id)
        if raw is None:
            return None
        event = json.loads(raw)
        return shown_event(event) if event.get("owner") == owner else None

    def page(
        self,
        window: EventWindow,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> EventPage:
        """A page of the window's events, newest first (one cursor at most: the web layer
        refuses both)."""
        found = self._store.events.page(window, limit, starting_after, ending_before)
        if found is None:
            if starting_after is not None:
                raise UnknownStartingPointError(starting_after, "starting_after", "event")
            raise UnknownStartingPointError(ending_before or "", "ending_before", "event")
        records, has_more = found
        return EventPage([shown_event(json.loads(raw)) for raw in records], has_more)


def shown_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as /v1 shows it: without the fields that only route it."""
    return {name: value for name, value in event.items() if name not in ROUTING_FIELDS}


def changed_attributes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's ``previous_attributes``: the old value of each shown field that changed;
    for a hash (metadata), only its changed keys, an added key's old value null."""
    previous: dict[str, Any] = {}
    for name, old in before.items():
        new = after.get(name)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            previous[name] = {
                key: old.get(key)
                for key in sorted(old.keys() | new.keys())
                if old.get(key) != new.get(key)
            }
        else:
            previous[name] = old
    return previous
