"""Idempotency-Key on /v1 POSTs (docs.stripe.com/api/idempotent_requests): a repeated key
replays the first answer; the records themselves are the ``idempotency`` module's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request

from oidc_link.platform.idempotency import (
    MAX_KEY_LENGTH,
    InFlight,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
    fingerprint,
)
from oidc_link.web.api.auth import caller
from oidc_link.web.api.errors import ApiError
from oidc_link.web.context import services


def run_idempotently(
    params: dict[str, Any], action: Callable[[], tuple[dict[str, Any], int]]
) -> tuple[Response, int]:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        body, status = action()
        return jsonify(body), status
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
        )
    idempotency = services().idempotency
    scope = caller().key_digest
    api_key = caller().key
    outcome = idempotency.begin(scope, key, fingerprint("POST", request.path, params), api_key)
    if isinstance(outcome, Replay):
        response = jsonify(outcome.response.body)
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Idempotency-Key"] = key
        return response, outcome.response.status
    if isinstance(outcome, Mismatch):
        raise ApiError(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they "
            "were first used with.",
            code="idempotency_key_reused",
        )
    if isinstance(outcome, InFlight):
        raise ApiError(
            409,
            "idempotency_error",
            "Another request with this Idempotency-Key is still being processed; retry later.",
            code="idempotency_key_in_use",
        )
    started: Started = outcome
    try:
        body, status = action()
    except BaseException:
        # Failed validation (or worse): nothing is kept, the key may be used again.
        idempotency.abandon(scope, key, started)
        raise
    if status < 400:
        idempotency.finish(scope, key, started, StoredResponse(status, body), api_key)
    else:
        idempotency.abandon(scope, key, started)
    response = jsonify(body)
    response.headers["Idempotency-Key"] = key
    return response, status
