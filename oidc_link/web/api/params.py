"""/v1 parameters: Stripe's form encoding (``metadata[key]=value``) or a JSON object, and
the checks every endpoint shares (unknown names, strings, hashes, list limits)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import request
from werkzeug.datastructures import MultiDict

from oidc_link.web.api.errors import ApiError

# Stripe's list limits (docs.stripe.com/api/pagination).
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_BRACKETED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]]*)\]$")


def form_params(fields: MultiDict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, values in fields.lists():
        if len(values) > 1:
            raise _invalid(name, f"The parameter {name} was given more than once.")
        value = values[0]
        bracketed = _BRACKETED.match(name)
        if bracketed:
            outer, inner = bracketed.groups()
            nested = params.setdefault(outer, {})
            if not isinstance(nested, dict):
                raise _invalid(outer, f"Invalid {outer}: give either a hash or a value.")
            nested[inner] = value
        elif "[" in name or "]" in name:
            raise _invalid(name, f"Invalid parameter name: {name[:80]}.")
        elif name in params:
            raise _invalid(name, f"Invalid {name}: give either a hash or a value.")
        else:
            params[name] = value
    return params


def request_params() -> dict[str, Any]:
    if request.method != "POST":
        return form_params(request.args)
    if request.args:
        name = next(iter(request.args))
        raise _unknown(name, f"Received unknown parameter in the query string: {name[:80]}.")
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request_error", "The JSON body must be an object.")
        return data
    if request.mimetype in ("", "application/x-www-form-urlencoded"):
        return form_params(request.form)
    raise ApiError(
        400,
        "invalid_request_error",
        "Send parameters as application/x-www-form-urlencoded or application/json.",
    )


def only(params: dict[str, Any], allowed: Iterable[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _unknown(name, f"Received unknown parameter: {str(name)[:80]}.")


def text_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(name, f"Invalid {name}: must be a string.")


def metadata_param(params: dict[str, Any]) -> dict[str, Any]:
    value = params.get("metadata")
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    raise _invalid("metadata", "Invalid metadata: must be a hash (metadata[key]=value).")


def metadata_update_param(params: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """An update's ``metadata``: the changes to merge (None when not sent), and whether to
    unset every key first (``metadata=""``, as Stripe reads it)."""
    value = params.get("metadata")
    if value == "":
        return None, True
    if value is None or isinstance(value, dict):
        return value, False
    raise _invalid("metadata", "Invalid metadata: must be a hash (metadata[key]=value).")


def cursor_params(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """A list's ``starting_after`` and ``ending_before``: one at most, as Stripe allows."""
    starting_after = text_param(params, "starting_after") or None
    ending_before = text_param(params, "ending_before") or None
    if starting_after is not None and ending_before is not None:
        raise ApiError(
            400,
            "invalid_request_error",
            "You may only specify one of these parameters: ending_before, starting_after.",
            code="parameters_exclusive",
            param="ending_before",
        )
    return starting_after, ending_before


def limit_param(params: dict[str, Any]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    text = str(raw)
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Invalid limit: must be an integer from 1 to {MAX_LIMIT}.",
            code="parameter_invalid_integer",
            param="limit",
        )
    return int(text)


def _unknown(name: str, message: str) -> ApiError:
    return ApiError(
        400, "invalid_request_error", message, code="parameter_unknown", param=str(name)[:80]
    )


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(
        400, "invalid_request_error", message, code="parameter_invalid_string", param=name[:80]
    )
