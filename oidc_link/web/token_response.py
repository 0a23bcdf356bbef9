"""A token endpoint's answer as the app's response: the token view's (web/protocol.py) and
the one answered before Flask (web/token_fast_path.py) are made by the same function, so the
two cannot drift apart."""

from __future__ import annotations

import json

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
