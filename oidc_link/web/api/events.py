"""/v1 events (issue 18 item 1): ``GET /v1/events`` and ``GET /v1/events/{id}``, a client
seeing only its owner's; and the ``request`` an API change's event names. Translates HTTP
to platform/events.py; no rules of its own beyond reading parameters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from oidc_link.platform.events import EVENT_TYPES, Cause
from oidc_link.store.events import EventWindow
from oidc_link.web.api.auth import caller
from oidc_link.web.api.errors import ApiError
from oidc_link.web.api.objects import event_list
from oidc_link.web.api.params import cursor_params, limit_param, only, request_params, text_param
from oidc_link.web.context import services

# Nested in the /v1 blueprint (web/api/__init__.py), whose key check runs first.
events_api = Blueprint("events", __name__)

# Stripe's range filters on ``created`` (docs.stripe.com/api/events/list).
CREATED_BOUNDS = ("gt", "gte", "lt", "lte")


def request_cause() -> Cause:
    """What an event written by this /v1 request names as its ``request``."""
    return Cause(g.get("request_id"), request.headers.get("Idempotency-Key"))


@events_api.get("/events")
def list_events() -> Response:
    params = request_params()
    only(params, ("limit", "starting_after", "ending_before", "type", "created"))
    limit = limit_param(params)
    starting_after, ending_before = cursor_params(params)
    since, until = _created_params(params)
    window = EventWindow(caller().owner, _type_param(params), since, until)
    page = services().events.page(window, limit, starting_after, ending_before)
    return jsonify(event_list(page, "/v1/events"))


@events_api.get("/events/<event_id>")
def retrieve_event(event_id: str) -> Response:
    only(request_params(), ())
    event = services().events.find(caller().owner, event_id)
    if event is None:
        raise ApiError(
            404,
            "invalid_request_error",
            f"No such event: '{event_id[:100]}'",
            code="resource_missing",
            param="id",
        )
    return jsonify(event)


def _type_param(params: dict[str, Any]) -> str | None:
    event_type = text_param(params, "type") or None
    if event_type is not None and event_type not in EVENT_TYPES:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Invalid type: must be one of {', '.join(EVENT_TYPES)}.",
            code="parameter_invalid_string",
            param="type",
        )
    return event_type


def _created_params(params: dict[str, Any]) -> tuple[int | None, int | None]:
    """``created`` as an exact second or a hash of ``gt``/``gte``/``lt``/``lte``: the
    inclusive bounds (since, until) it leaves, in whole seconds."""
    raw = params.get("created")
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        exact = _timestamp("created", raw)
        return exact, exact
    since: int | None = None
    until: int | None = None
    for bound, value in raw.items():
        if bound not in CREATED_BOUNDS:
            raise ApiError(
                400,
                "invalid_request_error",
                f"Received unknown parameter: created[{str(bound)[:20]}].",
                code="parameter_unknown",
                param=f"created[{str(bound)[:20]}]",
            )
        second = _timestamp(f"created[{bound}]", value)
        if bound in ("gt", "gte"):
            low = second + 1 if bound == "gt" else second
            since = low if since is None else max(since, low)
        else:
            high = second - 1 if bound == "lt" else second
            until = high if until is None else min(until, high)
    return since, until


def _timestamp(param: str, value: Any) -> int:
    text = str(value)
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Invalid {param}: must be a unix timestamp (whole seconds).",
            code="parameter_invalid_integer",
            param=param,
        )
    return int(text)
