"""How the client speaks HTTP to the /v1 API: Stripe's form encoding, the API key, an
Idempotency-Key on every POST, timeouts, and bounded retries only where they are safe.

Standard library only (urllib), so the client adds no dependency and owns its connection
errors. Never logs the API key, a request body or a response body (Account and Login Link
URLs are bearer secrets): only method, path, status and request id.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPException
from typing import Any
from urllib.parse import urlencode, urlsplit

from oidc_link.client.errors import APIConnectionError, APIError, error_from_response
from oidc_link.client.objects import ApiResponse, Headers

logger = logging.getLogger("oidc_link.client")

# Backoff between retries: exponential from the first delay, capped, with jitter so that many
# clients failing together do not retry in step (the Stripe SDKs' shape).
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 5.0
# A Retry-After longer than this is not waited for: the error goes to the caller instead.
MAX_RETRY_AFTER = 10.0
# Answers that say "try again": 429 (RFC 6585 §4), 503 (RFC 9110 §15.6.4), and 409, which the
# API answers while an earlier request with the same Idempotency-Key is still running.
RETRY_STATUSES = frozenset({409, 429, 503})


@dataclass(frozen=True)
class Answer:
    """A decoded 2xx answer."""

    body: Any
    response: ApiResponse


def encode_form(params: Mapping[str, Any]) -> str:
    """Stripe's form encoding: ``metadata[key]=value``, ``items[0]=...``; None is left out
    and booleans are ``true``/``false``."""
    pairs: list[tuple[str, str]] = []

    def add(name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, item in value.items():
                add(f"{name}[{key}]", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                add(f"{name}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, str(value)))

    for key, value in params.items():
        add(str(key), value)
    return urlencode(pairs)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """The API never redirects; following one would resend the API key to wherever the
    redirect points. A 3xx becomes an APIError instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Transport:
    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout: float,
        max_network_retries: int,
        user_agent: str,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url_of(base_url)
        self._timeout = timeout
        self._max_retries = max_network_retries
        self._user_agent = user_agent
        # Only what the API needs: http(s), proxies from the environment, errors as answers.
        # No file:, ftp: or data: handlers, and no following of redirects.
        self._opener = urllib.request.OpenerDirector()
        for handler in (
            urllib.request.ProxyHandler(),
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(),
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
            _RefuseRedirects(),
        ):
            self._opener.add_handler(handler)

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Answer:
        """Send one API call, retrying it when that is safe, and decode the answer.

        Every call the client makes may be retried: GET and DELETE are idempotent
        (RFC 9110 §9.2.2), and every POST carries an Idempotency-Key, made up here when the
        caller gave none, so the server answers a retry with the first request's response
        instead of acting twice.
        """
        url = self.base_url + path
        body: bytes | None = None
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        encoded = encode_form(params or {})
        if method == "POST":
            body = encoded.encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            # Like the Stripe SDKs: a random key when the caller chose none (a UUID4).
            key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
            headers["Idempotency-Key"] = key
        elif encoded:
            url = f"{url}?{encoded}"

        attempt = 0
        while True:
            try:
                status, response_headers, raw = self._send(method, url, body, headers)
            except APIConnectionError as error:
                if not error.should_retry or attempt >= self._max_retries:
                    raise
                attempt += 1
                self._pause(method, path, attempt, None, "no answer")
                continue
            if status in RETRY_STATUSES and attempt < self._max_retries:
                retry_after = _retry_after(response_headers)
                if retry_after is None or retry_after <= MAX_RETRY_AFTER:
                    attempt += 1
                    self._pause(method, path, attempt, retry_after, f"HTTP {status}")
                    continue
            return self._interpret(method, path, status, response_headers, raw)

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Headers, bytes]:
        # The URL starts with base_url, which base_url_of allowed only as http(s).
        request = urllib.request.Request(  # noqa: S310
            url, data=body, headers=headers, method=method
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return response.status, _header_dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            # A non-2xx answer: an answer all the same, with the API's error body.
            try:
                raw = error.read()
            except (OSError, HTTPException) as read_error:
                raise APIConnectionError(
                    f"The connection to {self.base_url} failed while reading an "
                    f"HTTP {error.code} answer ({type(read_error).__name__})."
                ) from None
            finally:
                error.close()
            return error.code, _header_dict(error.headers), raw
        except urllib.error.URLError as error:
            reason = error.reason
            verify_failed = isinstance(reason, ssl.SSLCertVerificationError)
            raise APIConnectionError(
                f"Could not connect to {self.base_url}: {_describe(reason)}.",
                should_retry=not verify_failed,
            ) from None
        except (OSError, HTTPException) as error:
            # Refused, reset, dropped before the answer (RemoteDisconnected), or timed out.
            raise APIConnectionError(
                f"The connection to {self.base_url} failed: {_describe(error)}."
            ) from None

    def _pause(
        self, method: str, path: str, attempt: int, retry_after: float | None, why: str
    ) -> None:
        delay = min(INITIAL_RETRY_DELAY * 2 ** (attempt - 1), MAX_RETRY_DELAY)
        delay *= random.uniform(0.75, 1.0)  # noqa: S311 - jitter, not a secret
        if retry_after is not None:
            delay = max(delay, retry_after)
        logger.info(
            "oidc-link API %s %s: %s, retry %d of %d in %.2f s",
            method,
            path,
            why,
            attempt,
            self._max_retries,
            delay,
        )
        time.sleep(delay)

    def _interpret(
        self, method: str, path: str, status: int, headers: Headers, raw: bytes
    ) -> Answer:
        request_id = headers.get("Request-Id")
        logger.debug("oidc-link API %s %s -> %d (%s)", method, path, status, request_id)
        try:
            body: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if not 200 <= status < 300:
            raise error_from_response(status, body, headers, request_id)
        if not isinstance(body, dict):
            raise APIError(
                f"The server answered HTTP {status} with a body that is not a JSON object.",
                http_status=status,
                request_id=request_id,
                headers=headers,
            )
        return Answer(body, ApiResponse(status, request_id, headers))


def _header_dict(headers: Message) -> Headers:
    return Headers(headers.items())


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (RFC 9110 §10.2.3); the HTTP-date form is not used by the API
    and is ignored."""
    value = headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    return None


def _describe(reason: object) -> str:
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)


def base_url_of(url: str) -> str:
    """The API's origin (and path prefix, if the provider is mounted under one), checked."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL such as https://login.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("base_url must have no query, fragment or credentials")
    return url.rstrip("/")
