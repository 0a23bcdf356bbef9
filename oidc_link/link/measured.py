"""A LinkClient that times each call of the client it wraps, by operation and outcome.

It changes nothing it passes on: the same answers, the same LinkErrors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from oidc_link.link import (
    CheckAhead,
    LinkClient,
    LinkError,
    LinkUser,
    LookupResult,
    VerificationStarted,
)
from oidc_link.metrics import Metrics

Answer = TypeVar("Answer")


class MeasuredLinkClient:
    def __init__(self, inner: LinkClient, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def lookup(self, email: str) -> LookupResult:
        return self._timed("lookup", self._inner.lookup, email)

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        return self._timed(
            "start_verification", self._inner.start_verification, email, client_secret
        )

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        return self._inner.check_ahead(session_hint)  # no call to Link: not timed

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        return self._timed(
            "authenticate", self._inner.authenticate, email, client_secret, code, ahead
        )

    def _timed(self, operation: str, call: Callable[..., Answer], *args: Any) -> Answer:
        """``call(*args)``, timed (a plain try rather than a context manager: every step)."""
        timer: Callable[[], float] = self._metrics.timer
        started = timer()
        outcome = "error"  # anything but an answer or a LinkError: a bug, still timed
        try:
            answer = call(*args)
            outcome = "ok"
            return answer
        except LinkError as error:
            outcome = error.kind.value
            raise
        finally:
            self._metrics.link_call(operation, outcome, timer() - started)
