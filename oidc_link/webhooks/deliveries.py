"""Webhook deliveries on the outbox: an event (kind ``event``) becomes one delivery per
endpoint subscribed to its type among the clients allowed to see it, and each delivery is
one signed attempt (delivery.py) whose answer the worker acts on; a 410 disables the
endpoint here. Retries, backoff and acknowledgement are the worker's."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from oidc_link.config import Settings
from oidc_link.config.webhooks import WebhookEndpoint
from oidc_link.metrics import Metrics
from oidc_link.outbound import for_log
from oidc_link.outbox.handling import Outcome
from oidc_link.store.outbox import OutboxEntry
from oidc_link.store.webhook_endpoints import EVENT, WebhookEndpointStore
from oidc_link.webhooks.delivery import Outcome as Answer
from oidc_link.webhooks.delivery import WebhookSender

log = logging.getLogger(__name__)

# One event for one endpoint (body: ``event``, the event as delivered, and ``endpoint_id``).
WEBHOOK_DELIVERY = "webhook_delivery"
# Who may see an event: a list of client ids at the top of the event entry's body.
AUDIENCE = "client_ids"
# What routes an event rather than tells what happened (its audience, the owner of its
# accounts): never delivered, as GET /v1/events never shows them (platform/events.py).
ROUTING_FIELDS = frozenset({AUDIENCE, "owner"})

# The events' store (store/events.py): keeps each event for GET /v1/events; what it
# answers is not used.
SaveEvent = Callable[[dict[str, Any]], object]


class WebhookDeliveries:
    """``fan_out`` (a FanOut for ``event``) and ``deliver`` (the Handler of
    ``webhook_delivery``). The endpoints are the configuration's; Redis holds only their
    state (disabled, last attempt)."""

    def __init__(
        self,
        settings: Settings,
        endpoints: WebhookEndpointStore,
        sender: WebhookSender,
        metrics: Metrics,
        save_event: SaveEvent,
    ) -> None:
        self._settings = settings
        self._endpoints = endpoints
        self._sender = sender
        self._metrics = metrics
        self._save_event = save_event

    def fan_out(self, entry: OutboxEntry) -> list[OutboxEntry]:
        """Keep the event (its store, and the operator's log), then one delivery per
        enabled endpoint of a client in its audience that wants its type. The delivery's id
        is the entry's and the endpoint's: stable across the worker's retries."""
        if entry.kind != EVENT:
            return []
        event = entry.body
        self._save_event(event)
        self._endpoints.log_event(event)
        wanted = self._subscribed(event)
        states = self._endpoints.states([endpoint.endpoint_id for endpoint in wanted])
        delivered = {name: value for name, value in event.items() if name not in ROUTING_FIELDS}
        return [
            OutboxEntry(
                WEBHOOK_DELIVERY,
                f"{entry.entry_id}:{endpoint.endpoint_id}",
                {"event": delivered, "endpoint_id": endpoint.endpoint_id},
            )
            for endpoint in wanted
            if not states[endpoint.endpoint_id].disabled
        ]

    def deliver(self, entry: OutboxEntry, attempt: int) -> Outcome:
        """One signed POST of the event; 2xx delivered, 410 disables the endpoint and gives
        up, anything else is retried. An endpoint removed from the configuration or
        disabled since the fan-out gets nothing more."""
        event = entry.body["event"]
        event_id, event_type = str(event.get("id")), str(event.get("type"))
        endpoint_id = entry.body["endpoint_id"]
        endpoint = self.endpoint(endpoint_id)
        if endpoint is None or self._endpoints.states([endpoint_id])[endpoint_id].disabled:
            log.info(
                "webhook gave up: %s %s to endpoint %s, which is %s",
                event_type,
                event_id,
                endpoint_id,
                "no longer configured" if endpoint is None else "disabled",
            )
            client_id = endpoint.client_id if endpoint else ""
            self._metrics.webhook_delivery(event_type, client_id, "gave_up")
            return Outcome.GIVE_UP
        payload = json.dumps(event, separators=(",", ":")).encode()
        result = self._sender.attempt(
            endpoint, event_id=event_id, event_type=event_type, payload=payload
        )
        self._endpoints.note_attempt(
            endpoint.endpoint_id, event_id, result.outcome.value, result.reason
        )
        self._metrics.webhook_delivery(event_type, endpoint.client_id, result.outcome.value)
        if result.outcome is Answer.DELIVERED:
            return Outcome.DELIVERED
        if result.outcome is Answer.GONE:
            self._endpoints.disable(endpoint.endpoint_id, result.reason)
            log.warning(
                "webhook endpoint %s of client %s at %s disabled: %s",
                endpoint.endpoint_id,
                endpoint.client_id,
                for_log(endpoint.url),
                result.reason,
            )
            return Outcome.GIVE_UP
        return Outcome.RETRY

    def endpoints(self) -> list[WebhookEndpoint]:
        """Every configured endpoint, client by client."""
        return [endpoint for client in self._settings.clients for endpoint in client.webhooks]

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return next((e for e in self.endpoints() if e.endpoint_id == endpoint_id), None)

    def _subscribed(self, event: dict[str, Any]) -> list[WebhookEndpoint]:
        audience = set(event.get(AUDIENCE) or ())
        event_type = str(event.get("type"))
        return [
            endpoint
            for endpoint in self.endpoints()
            if endpoint.client_id in audience and endpoint.wants(event_type)
        ]
