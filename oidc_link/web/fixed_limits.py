"""Flask's request and response classes with the app's body and cookie limits read once,
when the app is made: Flask's own look the app up through ``current_app`` on every read
of a limit, about ten times for each form POST.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Request, Response


def request_class_for(config: Mapping[str, Any]) -> type[Request]:
    """Flask's Request, its limits from ``config`` as it is now; a limit set on one request
    (Flask 3.1's per-request override) still wins."""
    content_length = config["MAX_CONTENT_LENGTH"]
    form_memory_size = config["MAX_FORM_MEMORY_SIZE"]
    form_parts = config["MAX_FORM_PARTS"]

    class FixedLimitsRequest(Request):
        @property
        def max_content_length(self) -> int | None:
            own = self._max_content_length
            return content_length if own is None else own

        @max_content_length.setter
        def max_content_length(self, value: int | None) -> None:
            self._max_content_length = value

        @property
        def max_form_memory_size(self) -> int | None:
            own = self._max_form_memory_size
            return form_memory_size if own is None else own

        @max_form_memory_size.setter
        def max_form_memory_size(self, value: int | None) -> None:
            self._max_form_memory_size = value

        @property
        def max_form_parts(self) -> int | None:
            own = self._max_form_parts
            return form_parts if own is None else own

        @max_form_parts.setter
        def max_form_parts(self, value: int | None) -> None:
            self._max_form_parts = value

    return FixedLimitsRequest


def response_class_for(config: Mapping[str, Any]) -> type[Response]:
    """Flask's Response, warning about cookies over ``MAX_COOKIE_SIZE`` as it is now."""

    class FixedLimitsResponse(Response):
        max_cookie_size = config["MAX_COOKIE_SIZE"]

    return FixedLimitsResponse
