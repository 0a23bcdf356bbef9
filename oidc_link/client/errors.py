"""The client's error types, mirroring the Stripe SDKs', and the one mapping from an HTTP
answer to them. Messages come from the server's error object and never carry the API key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oidc_link.client.objects import Headers


class OidcLinkError(Exception):
    """Base of every error the client raises.

    ``error_type``, ``code``, ``message`` and ``param`` are the server's error object
    (``{"error": {...}}``); ``request_id`` is the ``Request-Id`` header, to quote to the
    provider's operator. Errors raised before any answer arrived have ``http_status`` None.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.param = param
        self.request_id = request_id
        self.error_type = error_type
        self.headers = Headers((headers or {}).items())
        self.json_body = json_body

    def __str__(self) -> str:
        if self.request_id:
            return f"Request {self.request_id}: {self.message}"
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, http_status={self.http_status!r}, "
            f"code={self.code!r}, param={self.param!r}, request_id={self.request_id!r})"
        )


class AuthenticationError(OidcLinkError):
    """401: the API key is missing, wrong or revoked."""


class InvalidRequestError(OidcLinkError):
    """400 or 404: bad parameters, or no such object (for this platform)."""


class IdempotencyError(OidcLinkError):
    """400 ``idempotency_error``: the key was first used with other parameters; or 409: a
    request with the same key is still running."""


class RateLimitError(OidcLinkError):
    """429: too many requests in too short a time."""


class APIError(OidcLinkError):
    """The server failed (5xx), or answered something that is not the API's JSON."""


class APIConnectionError(OidcLinkError):
    """No answer: the connection failed, was dropped, or timed out."""

    def __init__(self, message: str, *, should_retry: bool = True) -> None:
        super().__init__(message)
        # False for failures that a retry cannot fix (a certificate that does not verify).
        self.should_retry = should_retry


def error_from_response(
    status: int, body: Any, headers: Mapping[str, str], request_id: str | None
) -> OidcLinkError:
    """The typed error for a non-2xx answer whose body was decoded as ``body`` (None when it
    was not JSON)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return APIError(
            f"The server answered HTTP {status} without an API error object.",
            http_status=status,
            request_id=request_id,
            headers=headers,
            json_body=body,
        )
    fields: dict[str, Any] = {
        "http_status": status,
        "code": _text(error.get("code")),
        "param": _text(error.get("param")),
        "request_id": request_id,
        "error_type": _text(error.get("type")),
        "headers": headers,
        "json_body": body,
    }
    message = error["message"]
    if status == 409 or (status == 400 and fields["error_type"] == "idempotency_error"):
        return IdempotencyError(message, **fields)
    if status in (400, 404):
        return InvalidRequestError(message, **fields)
    if status == 401:
        return AuthenticationError(message, **fields)
    if status == 429:
        return RateLimitError(message, **fields)
    return APIError(message, **fields)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
