"""Back-Channel Logout 1.0 on the outbox: a logout's notice (written by store/sessions.py in
the step that takes the session's clients) becomes one delivery per client with a
``backchannel_logout_uri``, and each delivery signs its logout token when it is made.

The outbox's worker retries and acknowledges; this module makes one attempt per call. It
holds no key: logout.py signs the tokens, passed in by services.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from oidc_link.config import ClientSettings
from oidc_link.metrics import Metrics
from oidc_link.outbound import Outbound, OutboundError, for_log
from oidc_link.outbox.handling import Outcome
from oidc_link.store.outbox import OutboxEntry
from oidc_link.store.sessions import BACKCHANNEL_LOGOUT

log = logging.getLogger(__name__)

# One client's share of a logout notice: what the worker delivers (body: sid, sub,
# client_id).
BACKCHANNEL_LOGOUT_NOTICE = "backchannel_logout_notice"
# Seconds for one whole attempt (connect, TLS, request, status line).
DEFAULT_DEADLINE = 5.0

# (client, sid, sub) -> a freshly signed logout token (Logout.logout_token).
SignLogoutToken = Callable[[ClientSettings, str, str], str]


class LogoutNotices:
    """The two halves of the kind: ``fan_out`` (a FanOut for ``backchannel_logout``) and
    ``deliver`` (the Handler of ``backchannel_logout_notice``).

    Status rules of Back-Channel Logout 1.0 §2.8: a 2xx is delivered; a 4xx means the relying
    party refused the token, and neither it nor a redirect (never followed: the token goes
    to the registered URI only) nor an address the outbound policy refuses changes on a
    retry, so those give up; no connection, a timeout or a 5xx are retried.
    """

    def __init__(
        self,
        client_of: Callable[[str], ClientSettings | None],
        sign: SignLogoutToken,
        outbound: Outbound,
        metrics: Metrics,
        *,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._client_of = client_of
        self._sign = sign
        self._outbound = outbound
        self._metrics = metrics
        self._deadline = deadline

    def fan_out(self, entry: OutboxEntry) -> list[OutboxEntry]:
        """One notice per client named that still has a ``backchannel_logout_uri`` (the
        configuration may have changed since the logout)."""
        if entry.kind != BACKCHANNEL_LOGOUT:
            return []
        sid, subjects = entry.body["sid"], entry.body["subjects"]
        return [
            OutboxEntry(
                BACKCHANNEL_LOGOUT_NOTICE,
                f"{entry.entry_id}:{client_id}",
                {"sid": sid, "sub": subjects[client_id], "client_id": client_id},
            )
            for client_id in sorted(subjects)
            if self._uri_of(client_id)
        ]

    def deliver(self, entry: OutboxEntry, attempt: int) -> Outcome:
        """One POST of a logout token signed now (§2.5): its ``exp`` counts from this
        attempt, not from the logout, so a late retry is still a valid token."""
        client = self._client_of(entry.body["client_id"])
        if client is None or not client.backchannel_logout_uri:
            log.info(
                "Back-channel logout notice %s: the client no longer takes notices", entry.entry_id
            )
            self._metrics.backchannel_notice(entry.body["client_id"], "gave_up")
            return Outcome.GIVE_UP
        uri = client.backchannel_logout_uri
        token = self._sign(client, entry.body["sid"], entry.body["sub"])
        outcome, reason = self._attempt(uri, token)
        log.log(
            logging.INFO if outcome is Outcome.DELIVERED else logging.WARNING,
            "Back-channel logout to client %s at %s: %s (attempt %d)",
            client.client_id,
            for_log(uri),
            reason,
            attempt,
        )
        self._metrics.backchannel_notice(client.client_id, _counted(outcome))
        return outcome

    def _uri_of(self, client_id: str) -> str | None:
        client = self._client_of(client_id)
        return client.backchannel_logout_uri if client else None

    def _attempt(self, uri: str, token: str) -> tuple[Outcome, str]:
        try:
            # A fresh connection each time: nothing (no cookie) carried over between POSTs.
            answer = self._outbound.post_form(uri, {"logout_token": token}, deadline=self._deadline)
        except OutboundError as error:
            return (Outcome.RETRY if error.retryable else Outcome.GIVE_UP), error.reason
        status = answer.status
        if 200 <= status < 300:
            return Outcome.DELIVERED, f"delivered ({status})"
        if status >= 500:
            return Outcome.RETRY, f"HTTP {status}"
        return Outcome.GIVE_UP, f"refused (HTTP {status})"


def _counted(outcome: Outcome) -> str:
    """The metric's outcome label: delivered, retry or gave_up."""
    return "gave_up" if outcome is Outcome.GIVE_UP else outcome.value
