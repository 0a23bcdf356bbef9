"""Idempotency-Key for /v1 POSTs (Stripe's rules): the first response kept 24 h and replayed.

Keys are scoped to the API key that sent them; a key reused with other parameters is an
error, and while the first request runs a second one is refused. No HTTP here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oidc_link.ids import digest, new_secret
from oidc_link.sealed import seal, unseal
from oidc_link.store import Store

# Stripe keeps keys for at least 24 hours (docs.stripe.com/api/idempotent_requests).
REPLAY_SECONDS = 24 * 3600
# How long an in-flight marker holds a key: long enough for any request to finish, short
# enough that a crashed request does not block the key for long.
IN_FLIGHT_SECONDS = 60
# Stripe's limit on the key's length.
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Started:
    """This request holds the key: run it, then ``finish`` or ``abandon``."""

    marker: str


@dataclass(frozen=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True)
class InFlight:
    """Another request with this key has not finished."""


@dataclass(frozen=True)
class Mismatch:
    """The key was first used with other parameters (or another endpoint)."""


Outcome = Started | Replay | InFlight | Mismatch


def fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    """What makes two requests "the same": endpoint and parameters, in a canonical form."""
    return digest(json.dumps([method, path, params], sort_keys=True, separators=(",", ":")))


class Idempotency:
    def __init__(self, store: Store) -> None:
        self._store = store

    def begin(self, scope: str, key: str, request_fingerprint: str, api_key: str) -> Outcome:
        """Claim ``key`` for this request, or say why it cannot run.

        ``scope`` is the API key's digest, so two platforms never share keys.
        """
        marker = json.dumps(
            {"state": "running", "fingerprint": request_fingerprint, "holder": new_secret(12)}
        )
        if self._store.idempotency.claim(scope, key, marker, IN_FLIGHT_SECONDS):
            return Started(marker)
        raw = self._store.idempotency.load(scope, key)
        if raw is None:
            # The other request was abandoned between our two calls: its key is free again,
            # but rather than race for it, ask the caller to retry.
            return InFlight()
        record = json.loads(raw)
        if record.get("fingerprint") != request_fingerprint:
            return Mismatch()
        if record.get("state") == "running":
            return InFlight()
        opened = unseal(record["sealed_body"], api_key, digest(key))
        if opened is None:
            return Mismatch()
        return Replay(StoredResponse(int(record["status"]), json.loads(opened)))

    def finish(
        self, scope: str, key: str, started: Started, response: StoredResponse, api_key: str
    ) -> None:
        """Keep the response for replays, sealed with the API key that Redis never holds:
        a response can carry a bearer URL (Account and Login Links) or personal data."""
        request_fingerprint = json.loads(started.marker)["fingerprint"]
        record = {
            "state": "done",
            "fingerprint": request_fingerprint,
            "status": response.status,
            "sealed_body": seal(json.dumps(response.body), api_key, digest(key)),
        }
        self._store.idempotency.save(scope, key, json.dumps(record), REPLAY_SECONDS)

    def abandon(self, scope: str, key: str, started: Started) -> None:
        """Forget the key: a request that failed validation is not stored (Stripe's rule),
        so the same key may be used again once the parameters are fixed."""
        self._store.idempotency.release(scope, key, started.marker)
