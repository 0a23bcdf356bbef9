"""The live Link client: one pooled HTTP session, timeouts on every call, retries only where safe.

The only module that speaks HTTP to Link (DESIGN.md §2); dialects.py says what goes on the wire.
It logs operation, status, outcome and duration only: never bodies, emails, codes or secrets.
"""

from __future__ import annotations

import enum
import http.cookiejar
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from oidc_link.config import LiveLinkSettings
from oidc_link.link import (
    CheckAhead,
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)
from oidc_link.link.dialects import NOT_JSON, WireAnswer, WireRequest, dialect_for

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE = 0.2  # seconds before the first retry; doubles each time
POOL_SIZE = 20  # connections kept to Link, shared by the worker threads
USER_AGENT = "oidc-link"

# Kinds the user caused or can fix; the others mean Link or our integration is in trouble.
_USER_OUTCOMES = {
    LinkErrorKind.INVALID_CODE,
    LinkErrorKind.CODE_EXPIRED,
    LinkErrorKind.TOO_MANY_ATTEMPTS,
    LinkErrorKind.NOT_FOUND,
}


class RetryPolicy(enum.Enum):
    """When a failed call may be sent again."""

    # Read-only (lookup): after connection failures, timeouts and 5xx.
    SAFE = "safe"
    # Has an effect (an SMS): only when the request provably never reached Link. After a read
    # timeout or a 5xx, Link may have sent the SMS, and a retry would send a second one.
    UNSENT = "unsent"
    # Code submission: a retry could count as a second attempt, or replay a spent code.
    NEVER = "never"


class _QueryStringScrubber(logging.Filter):
    """urllib3 logs request URLs at DEBUG; a lookup's query string holds an email and our key."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(value: Any) -> Any:
    if isinstance(value, str) and "?" in value:
        return value.split("?", 1)[0] + "?[redacted]"
    return value


def _keep_urls_out_of_logs() -> None:
    """Install the scrubber once. A filter, rather than a log level, still holds when an
    operator turns urllib3's debug logging on."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(existing, _QueryStringScrubber) for existing in logger.filters):
        logger.addFilter(_QueryStringScrubber())


def _pooled_session() -> requests.Session:
    session = requests.Session()
    # Our own retry loop decides what is safe to repeat; urllib3 must not retry on its own.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # One session serves every user's sign-in: a cookie Link set for one must never ride
    # along on another's request.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def _never_sent(error: requests.RequestException) -> bool:
    """True when the connection was never made (refused, DNS failure, connect timeout)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if not isinstance(error, requests.ConnectionError) or not error.args:
        return False
    reason = getattr(error.args[0], "reason", None)
    return isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


def _may_retry_failure(policy: RetryPolicy, error: requests.RequestException) -> bool:
    if policy is RetryPolicy.SAFE:
        return isinstance(
            error,
            requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError,
        )
    if policy is RetryPolicy.UNSENT:
        return _never_sent(error)
    return False


def _parse_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return NOT_JSON


def _millis(started: float) -> float:
    return (time.monotonic() - started) * 1000


class LiveLinkClient:
    """A LinkClient for the real Link network, in the dialect the settings name."""

    def __init__(
        self,
        settings: LiveLinkSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._dialect = dialect_for(settings)
        self._sleep = sleep
        self._owns_session = session is None
        self._session = session if session is not None else _pooled_session()
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        _keep_urls_out_of_logs()

    def lookup(self, email: str) -> LookupResult:
        request = self._dialect.lookup_request(email)
        return self._call("lookup", RetryPolicy.SAFE, request, self._dialect.lookup_answer)

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        request = self._dialect.start_request(email, client_secret)
        return self._call(
            "start_verification",
            RetryPolicy.UNSENT,
            request,
            lambda answer: self._dialect.start_answer(answer, client_secret),
        )

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        return None  # Link keeps its sessions itself: nothing of ours to read

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        request = self._dialect.authenticate_request(email, client_secret, code)
        return self._call(
            "authenticate", RetryPolicy.NEVER, request, self._dialect.authenticate_answer
        )

    def close(self) -> None:
        """Release pooled connections (only those of a session this client made)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> LiveLinkClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self,
        operation: str,
        policy: RetryPolicy,
        request: WireRequest,
        read: Callable[[WireAnswer], T],
    ) -> T:
        started = time.monotonic()
        status: int | None = None
        try:
            answer = self._send(operation, policy, request)
            status = answer.status
            result = read(answer)
        except LinkError as error:
            self._log_outcome(operation, status, error.kind, started)
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            # The dialects check every field; this net keeps a missed case from becoming a
            # 500 page. ``from None``: the cause's message could quote Link's answer.
            self._log_outcome(operation, status, LinkErrorKind.BAD_RESPONSE, started)
            raise LinkError(LinkErrorKind.BAD_RESPONSE, "unreadable answer") from None
        self._log_outcome(operation, status, None, started)
        return result

    def _send(self, operation: str, policy: RetryPolicy, request: WireRequest) -> WireAnswer:
        """Send ``request``, repeating it as ``policy`` allows; the answer as status and JSON."""
        url = self._settings.base_url + request.path
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._session.request(
                    request.method,
                    url,
                    params=dict(request.query) or None,
                    data=dict(request.form) if request.form is not None else None,
                    json=dict(request.json) if request.json is not None else None,
                    headers=dict(request.headers),
                    timeout=self._timeout,
                    # A redirect is not part of either API; following one would carry
                    # secrets to wherever it points.
                    allow_redirects=False,
                )
            except requests.RequestException as error:
                # Only the exception's class is logged: its message holds the URL.
                log.debug(
                    "Link %s attempt %d: no answer (%s) after %.0f ms",
                    operation,
                    attempt + 1,
                    type(error).__name__,
                    _millis(started),
                )
                if _may_retry_failure(policy, error) and attempt < self._settings.max_retries:
                    self._back_off(attempt)
                    attempt += 1
                    continue
                raise LinkError(LinkErrorKind.UNAVAILABLE, "no answer from Link") from None
            status = response.status_code
            log.debug(
                "Link %s attempt %d: HTTP %d after %.0f ms",
                operation,
                attempt + 1,
                status,
                _millis(started),
            )
            if (
                status >= 500
                and policy is RetryPolicy.SAFE
                and attempt < self._settings.max_retries
            ):
                response.close()
                self._back_off(attempt)
                attempt += 1
                continue
            return WireAnswer(status=status, body=_parse_json(response.content))

    def _back_off(self, attempt: int) -> None:
        self._sleep(BACKOFF_BASE * 2**attempt)

    def _log_outcome(
        self, operation: str, status: int | None, kind: LinkErrorKind | None, started: float
    ) -> None:
        outcome = kind.value if kind else "ok"
        shown = f"HTTP {status}" if status is not None else "no answer"
        if kind is None or kind in _USER_OUTCOMES:
            level = logging.INFO
        elif kind is LinkErrorKind.BAD_RESPONSE:
            level = logging.ERROR  # our integration is broken: someone must look
        else:
            level = logging.WARNING
        hint = " (check link.live.publishable_key)" if status in (401, 403) else ""
        duration_ms = _millis(started)
        log.log(
            level,
            "Link %s: %s (%s) in %.0f ms%s",
            operation,
            outcome,
            shown,
            duration_ms,
            hint,
            extra={
                "event": "link.call",
                "operation": operation,
                "outcome": outcome,
                "link_status": status,
                "duration_ms": round(duration_ms, 1),
            },
        )
