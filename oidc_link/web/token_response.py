"""A token endpoint's answer as the app's response: the token view's (web/protocol.py) and
the one answered before Flask (web/token_fast_path.py) are made by the same function, so the
two cannot drift apart; and a successful answer sent as Werkzeug sent the first one."""

from __future__ import annotations

import json
from collections.abc import Iterable

from flask import Response
from werkzeug.datastructures import Headers

from oidc_link.oauth.messages import ProtocolResponse
from oidc_link.oauth.token_endpoint import TOKEN_RESPONSE_HEADERS

# A successful token answer's headers (RFC 6749 §5.1), each checked by Werkzeug here, once.
TOKEN_HEADER_PAIRS = list(TOKEN_RESPONSE_HEADERS)
_TOKEN_HEADERS = Headers(TOKEN_HEADER_PAIRS)


def token_response(answer: ProtocolResponse, response_class: type[Response]) -> Response:
    """``to_flask(answer)``, as ``response_class`` (the app's own, which Flask passes on as
    it is). A token's answer gets headers Werkzeug checked once, at import, rather than each
    of them again per answer."""
    body = answer.body
    if isinstance(body, dict):
        body = json.dumps(body)
    headers: Headers | list[tuple[str, str]] = answer.headers
    if headers == TOKEN_HEADER_PAIRS:
        headers = Headers()
        headers._list.extend(_TOKEN_HEADERS._list)  # Werkzeug's own list of checked pairs
    return response_class(body, answer.status, headers)


class TokenAnswers:
    """A successful token answer's status line and headers as Werkzeug sent the first one,
    with a slot each for the request id and the body's length (every other header is the
    same for every answer): the answers after it sent without a Response object."""

    def __init__(self) -> None:
        self._issued: tuple[str, list[tuple[str, str]], int, int] | None = None

    def issued(
        self, answer: ProtocolResponse, request_id: str
    ) -> tuple[list[bytes], str, list[tuple[str, str]]] | None:
        """A successful answer's body, status line and headers, or None: not one, or none
        sent yet to learn them from."""
        issued = self._issued
        if (
            issued is None
            or answer.status != 200
            or answer.body.__class__ is not str
            or answer.headers != TOKEN_HEADER_PAIRS
        ):
            return None
        status_line, headers, id_at, length_at = issued
        data = answer.body.encode()  # type: ignore[union-attr]
        headers = headers.copy()
        headers[id_at] = ("Request-Id", request_id)
        headers[length_at] = ("Content-Length", str(len(data)))
        return [data], status_line, headers

    def learn(
        self,
        answer: ProtocolResponse,
        request_id: str,
        sent: tuple[Iterable[bytes], str, list[tuple[str, str]]],
    ) -> None:
        """Keep the shape of a successful answer as Werkzeug sent it (one body part, the
        request id and the length each once, with the values this answer has)."""
        body_parts, status_line, headers = sent
        if (
            self._issued is not None
            or answer.status != 200
            or answer.body.__class__ is not str
            or answer.headers != TOKEN_HEADER_PAIRS
            or body_parts.__class__ is not list
            or len(body_parts) != 1  # type: ignore[arg-type]
        ):
            return
        data = body_parts[0]  # type: ignore[index]
        names = [name for name, _ in headers]
        if names.count("Request-Id") != 1 or names.count("Content-Length") != 1:
            return
        id_at, length_at = names.index("Request-Id"), names.index("Content-Length")
        if (
            data != answer.body.encode()  # type: ignore[union-attr]
            or headers[id_at][1] != request_id
            or headers[length_at][1] != str(len(data))
        ):
            return
        self._issued = (status_line, list(headers), id_at, length_at)
