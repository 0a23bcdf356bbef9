"""The outbox's streams in Redis: one per aggregate (keyspace.outbox), each in the hash slot
of the key whose change it tells, so that the change and its entry are one script or MULTI
even on Redis Cluster; and the index of streams that may hold entries.

A writer first ``announce``s the stream (its own round trip, before the change: an entry is
then never in a stream the relay cannot find), then puts ``entry_fields`` in an XADD inside
the change's script or MULTI. Entries carry ids, never a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oidc_link.store import keyspace
from oidc_link.store.base import Aggregate


@dataclass(frozen=True)
class OutboxEntry:
    """One thing to tell: its ``kind`` chooses the handler (``event``: a platform's event;
    ``backchannel_logout``: a logout notice), ``entry_id`` is stable across retries (an
    event's ``evt_`` id), ``body`` is the kind's JSON object."""

    kind: str
    entry_id: str
    body: dict[str, Any]

    def fields(self) -> dict[str, str]:
        """The stream entry's fields, for an XADD (in Lua: ``XADD key * kind .. id .. body ..``)."""
        return {
            "kind": self.kind,
            "id": self.entry_id,
            "body": json.dumps(self.body, separators=(",", ":"), sort_keys=True),
        }

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> OutboxEntry:
        """Back from XRANGE/XREADGROUP fields (bytes or str, as the client answers)."""
        text = {_text(name): _text(value) for name, value in fields.items()}
        return cls(kind=text["kind"], entry_id=text["id"], body=json.loads(text["body"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class OutboxStore(Aggregate):
    def announce(self, aggregate_key: str) -> str:
        """Note that ``aggregate_key``'s stream is about to get an entry; returns the
        stream's name, for the change's script or MULTI. One round trip, before the
        change; announcing a stream twice only moves its time forward."""
        stream = keyspace.outbox(aggregate_key)
        self._redis.zadd(keyspace.OUTBOX_INDEX, {stream: self._clock.now()}, gt=True)
        return stream
