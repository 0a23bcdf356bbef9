"""The /v1 surface's one error mapping: any exception to Stripe's error object
(docs.stripe.com/api/errors), and that object to a response with its headers."""

from __future__ import annotations

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from oidc_link.errors import DomainError, PlatformError, StoreUnavailableError
from oidc_link.web.errors import OUTAGE_MESSAGE, OUTAGE_RETRY_AFTER


class ApiError(Exception):
    """Stripe's error object, raised where /v1 itself refuses a request (API key, rate,
    parameters, Idempotency-Key) and answered as ``{"error": {...}}`` (DESIGN.md §6)."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.code = code
        self.param = param


def api_error_for(error: BaseException) -> ApiError:
    """Stripe's error object for whatever stopped a /v1 request (as stripe-python's
    ``specific_v1_api_error`` reads them back: by type, code and status)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, PlatformError):
        # Stripe: 404 when the object the request is about does not exist.
        status = 404 if error.missing else 400
        return ApiError(
            status, "invalid_request_error", error.message, code=error.code, param=error.param
        )
    if isinstance(error, DomainError):
        return ApiError(
            400, "invalid_request_error", error.message, code=error.code, param=error.param
        )
    if isinstance(error, StoreUnavailableError):
        return ApiError(503, "api_error", OUTAGE_MESSAGE, code="service_unavailable")
    if isinstance(error, MethodNotAllowed):
        # The Allow header is added with the answer (web/__init__.py), as on every surface.
        allowed = ", ".join(sorted(error.valid_methods or ()))
        return ApiError(
            405,
            "invalid_request_error",
            f"{request.method[:20]} is not allowed on {request.path[:100]}; "
            f"it accepts {allowed or 'no method'}.",
            code="method_not_allowed",
        )
    if isinstance(error, HTTPException):
        # DESIGN.md §6: never an HTML page on the /v1 API (unknown path, wrong method...).
        return ApiError(error.code or 500, "invalid_request_error", error.description or error.name)
    return ApiError(500, "api_error", "Unexpected error; please retry later.")


def error_response(error: ApiError) -> Response:
    body = {
        "error": {
            "type": error.error_type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
        }
    }
    response = jsonify(body)
    response.status_code = error.status
    if error.status == 401:
        # RFC 6750 §3: say which scheme is expected.
        # Both schemes the key may come in (auth.py): Bearer, or Basic with it as user name.
        response.headers["WWW-Authenticate"] = (
            'Bearer realm="oidc-link API", Basic realm="oidc-link API"'
        )
    if error.status == 429:
        # RFC 6585 §4: when to try again (the window is one second).
        response.headers["Retry-After"] = "1"
    if error.status == 503:
        # RFC 9110 §10.2.3: a Redis outage; long enough for a restart or failover.
        response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER)
    return response
