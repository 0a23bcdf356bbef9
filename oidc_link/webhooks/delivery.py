"""One delivery attempt of one event to one webhook endpoint: sign, POST over outbound.py,
and say what the answer means. Retries and backoff belong to the outbox's worker; acting on
the answer (disabling a gone endpoint) to deliveries.py."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config.webhooks import WebhookEndpoint
from oidc_link.outbound import Outbound, OutboundError, for_log
from oidc_link.webhooks.signature import SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

# Seconds for a whole attempt (connect, TLS, request, status line): a receiver should
# answer at once and do its work afterwards, as Stripe asks of its receivers too.
DEFAULT_DEADLINE = 10.0
GONE_STATUS = 410


class Outcome(enum.Enum):
    """What the answer asks for: acknowledge, try again later, or disable the endpoint
    (deliveries.py turns it into the outbox's Outcome)."""

    DELIVERED = "delivered"  # a 2xx answer
    RETRY = "retry"  # any other answer, a timeout, no connection, a refused address
    GONE = "gone"  # 410: the receiver says the endpoint no longer exists


@dataclass(frozen=True)
class DeliveryResult:
    """``status``: the HTTP status when an answer came, else None. ``reason``: a few words
    for the operator (never the payload, a secret or the URL's query)."""

    outcome: Outcome
    status: int | None
    reason: str


class WebhookSender:
    """Makes single attempts; holds no state between them, so any instance may make any."""

    def __init__(
        self, outbound: Outbound, clock: Clock, *, deadline: float = DEFAULT_DEADLINE
    ) -> None:
        self._outbound = outbound
        self._clock = clock
        self._deadline = deadline

    def attempt(
        self, endpoint: WebhookEndpoint, *, event_id: str, event_type: str, payload: bytes
    ) -> DeliveryResult:
        """POST ``payload`` (the event's JSON, exactly the bytes that are signed) to the
        endpoint, signed at this moment by each of its secrets."""
        timestamp = self._clock.now()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature_header(endpoint.secrets, timestamp, payload),
        }
        try:
            answer = self._outbound.post(endpoint.url, payload, headers, deadline=self._deadline)
        except OutboundError as error:
            result = DeliveryResult(Outcome.RETRY, None, error.reason)
        else:
            result = _judged(answer.status)
        self._log(endpoint, event_id, event_type, result)
        return result

    def _log(
        self, endpoint: WebhookEndpoint, event_id: str, event_type: str, result: DeliveryResult
    ) -> None:
        level = logging.INFO if result.outcome is Outcome.DELIVERED else logging.WARNING
        log.log(
            level,
            "webhook %s: %s %s to %s for client %s (%s)",
            result.outcome.value,
            event_type,
            event_id,
            for_log(endpoint.url),
            endpoint.client_id,
            result.reason,
        )


def _judged(status: int) -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult(Outcome.DELIVERED, status, f"HTTP {status}")
    if status == GONE_STATUS:
        return DeliveryResult(Outcome.GONE, status, "HTTP 410: the receiver removed the endpoint")
    if 300 <= status < 400:
        # Redirects are not followed: the signed event goes to the registered URL only.
        return DeliveryResult(Outcome.RETRY, status, f"HTTP {status}: redirects are not followed")
    return DeliveryResult(Outcome.RETRY, status, f"HTTP {status}")
