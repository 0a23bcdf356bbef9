"""``oidc-link events ...``: the operator's view of webhook deliveries: the recent events
handed to them, a resend, and each endpoint's state (disabled, last attempt), with ``enable``
for an endpoint a 410 disabled."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from oidc_link.errors import ConfigError, StoreUnavailableError
from oidc_link.outbound import for_log

if TYPE_CHECKING:
    from oidc_link.services import Services

DEFAULT_LIST_LIMIT = 20


def add_events_command(commands: argparse._SubParsersAction) -> None:
    events = commands.add_parser("events", help="webhook events and endpoints")
    events.add_argument("--config", help="TOML file (default: $OIDC_LINK_CONFIG)")
    actions = events.add_subparsers(dest="action", required=True)
    listed = actions.add_parser("list", help="the recent events handed to webhooks, newest first")
    listed.add_argument("--limit", type=int, default=DEFAULT_LIST_LIMIT)
    resend = actions.add_parser(
        "resend", help="deliver an event again to the endpoints subscribed to it now"
    )
    resend.add_argument("event_id", help="evt_...")
    endpoints = actions.add_parser(
        "endpoints", help="each client's endpoints: their events, state and last delivery"
    )
    endpoint_actions = endpoints.add_subparsers(dest="endpoint_action")
    enable = endpoint_actions.add_parser("enable", help="enable an endpoint a 410 disabled")
    enable.add_argument("endpoint_id", help="we_... (as `events endpoints` lists it)")


def events_command(args: argparse.Namespace) -> int:
    from oidc_link.config import load_settings
    from oidc_link.services import build_services

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    if not settings.redis_url:
        print("No REDIS_URL: events commands need the Redis the servers use.", file=sys.stderr)
        return 1
    services = build_services(settings)
    try:
        if args.action == "list":
            return _list(services, args.limit)
        if args.action == "resend":
            return _resend(services, args.event_id)
        if args.endpoint_action == "enable":
            return _enable(services, args.endpoint_id)
        return _endpoints(services)
    except StoreUnavailableError as error:
        print(f"Cannot use Redis: {error}", file=sys.stderr)
        return 1


def _list(services: Services, limit: int) -> int:
    events = services.store.webhook_endpoints.recent_events(max(1, limit))
    if not events:
        print("No event was handed to webhooks yet (or the log was emptied).")
        return 0
    print(f"{'ID':32} {'TYPE':34} {'CREATED':20} CLIENTS")
    for event in events:
        clients = ",".join(event.get("client_ids") or ()) or "-"
        created = _when(event["created"]) if isinstance(event.get("created"), int) else "-"
        print(f"{event['id']:32} {event.get('type', '-'):34} {created:20} {clients}")
    return 0


def _resend(services: Services, event_id: str) -> int:
    webhook_endpoints = services.store.webhook_endpoints
    event = webhook_endpoints.logged_event(event_id)
    if event is None:
        print(
            f"No event {event_id} in the log of recent events (`oidc-link events list`).",
            file=sys.stderr,
        )
        return 1
    entry_id = webhook_endpoints.resend(event)
    print(
        f"Resent {event_id} as outbox entry {entry_id}: it goes to the endpoints "
        "subscribed to it now (not to disabled ones)."
    )
    return 0


def _endpoints(services: Services) -> int:
    endpoints = services.webhook_deliveries.endpoints()
    if not endpoints:
        print("No client has [[clients.webhooks]] endpoints.")
        return 0
    states = services.store.webhook_endpoints.states([e.endpoint_id for e in endpoints])
    for endpoint in endpoints:
        state = states[endpoint.endpoint_id]
        print(f"{endpoint.endpoint_id}  client {endpoint.client_id}  {for_log(endpoint.url)}")
        print(f"  events:   {', '.join(sorted(endpoint.events))}")
        if state.disabled_at is not None:
            print(f"  state:    disabled {_when(state.disabled_at)}: {state.disabled_reason}")
        else:
            print("  state:    enabled")
        if state.last_at is not None:
            print(
                f"  last:     {state.last_outcome} ({state.last_reason}) for "
                f"{state.last_event_id} at {_when(state.last_at)}"
            )
        else:
            print("  last:     no delivery yet")
    return 0


def _enable(services: Services, endpoint_id: str) -> int:
    if services.webhook_deliveries.endpoint(endpoint_id) is None:
        print(
            f"No endpoint {endpoint_id} in the configuration (`oidc-link events endpoints`).",
            file=sys.stderr,
        )
        return 1
    if services.store.webhook_endpoints.enable(endpoint_id):
        print(f"Enabled {endpoint_id}: it gets the events from now on.")
    else:
        print(f"{endpoint_id} was not disabled; nothing to do.")
    return 0


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
