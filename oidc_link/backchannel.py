"""Back-Channel Logout 1.0 delivery: logout tokens POSTed to relying parties, off the request path.

A bounded queue drained by a few daemon worker threads, so a slow or dead relying party never
holds up the user's page. The POSTs go through outbound.py (checked addresses, one deadline);
this module knows nothing of sessions or keys: logout.py builds the tokens.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from oidc_link.outbound import Outbound, OutboundError, for_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogoutNotice:
    """One logout token for one relying party's ``backchannel_logout_uri``."""

    client_id: str
    uri: str
    logout_token: str


class BackchannelDelivery:
    """Sends logout notices in the background, with timeouts and a few retries.

    ``retry_delays`` are the waits before the second, third... attempt: retried are only
    failures that may pass (no connection, a timeout, a 5xx). A 4xx is the relying party
    refusing the token (Back-Channel Logout 1.0 §2.8) and is final; so is a redirect,
    which is not followed (the token goes to the registered URI only), and so is an
    address the outbound policy refuses. ``deadline``: seconds for one whole attempt.
    """

    def __init__(
        self,
        outbound: Outbound | None = None,
        *,
        deadline: float = 5.0,
        retry_delays: tuple[float, ...] = (1.0, 4.0),
        capacity: int = 1000,
        workers: int = 2,
    ) -> None:
        self._outbound = outbound or Outbound()
        self._deadline = deadline
        self._retry_delays = retry_delays
        self._queue: queue.Queue[LogoutNotice] = queue.Queue(maxsize=capacity)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()

    def send(self, notice: LogoutNotice) -> bool:
        """Queue a notice and return at once; False (and a warning) when the queue is full."""
        self._start_workers()
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            log.warning(
                "Back-channel logout queue full: dropped the notice for client %s",
                notice.client_id,
            )
            return False
        return True

    def wait_until_idle(self, timeout: float) -> bool:
        """Wait until every queued notice has been delivered or given up on (tests, shutdown)."""
        with self._queue.all_tasks_done:
            return self._queue.all_tasks_done.wait_for(
                lambda: self._queue.unfinished_tasks == 0, timeout
            )

    def close(self) -> None:
        """Stop the workers after their current attempt; queued notices are dropped."""
        self._stopping.set()

    def _start_workers(self) -> None:
        # Started on first use, not at construction: no threads for an app that never logs out.
        with self._start_lock:
            if self._threads:
                return
            for index in range(self._workers):
                thread = threading.Thread(
                    target=self._work, name=f"backchannel-logout-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                notice = self._queue.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                self._deliver(notice)
            except Exception:
                log.exception("Back-channel logout to client %s failed", notice.client_id)
            finally:
                self._queue.task_done()

    def _deliver(self, notice: LogoutNotice) -> None:
        attempts = len(self._retry_delays) + 1
        for attempt in range(1, attempts + 1):
            outcome, final = self._attempt(notice)
            if final:
                log.info(
                    "Back-channel logout to client %s at %s: %s (attempt %d)",
                    notice.client_id,
                    for_log(notice.uri),
                    outcome,
                    attempt,
                )
                return
            if attempt < attempts:
                log.info(
                    "Back-channel logout to client %s: %s; retrying (attempt %d of %d)",
                    notice.client_id,
                    outcome,
                    attempt,
                    attempts,
                )
                if self._stopping.wait(self._retry_delays[attempt - 1]):
                    return
        log.warning(
            "Back-channel logout to client %s at %s: gave up after %d attempts (%s)",
            notice.client_id,
            for_log(notice.uri),
            attempts,
            outcome,
        )

    def _attempt(self, notice: LogoutNotice) -> tuple[str, bool]:
        """One POST (§2.5); returns what happened and whether it is final."""
        try:
            # A fresh connection each time: nothing (no cookie) carried over between POSTs.
            answer = self._outbound.post_form(
                notice.uri, {"logout_token": notice.logout_token}, deadline=self._deadline
            )
        except OutboundError as error:
            return error.reason, not error.retryable
        status = answer.status
        if 200 <= status < 300:
            return f"delivered ({status})", True
        if status >= 500:
            return f"HTTP {status}", False
        # §2.8: 400 means the RP refused the token; other 4xx and 3xx will not change either.
        return f"refused (HTTP {status})", True
