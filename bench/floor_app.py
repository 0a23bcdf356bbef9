"""The WSGI app of ``bench.server_floor``: two fixed JSON documents and nothing else.

``FLOOR_ISSUER`` names the address the server listens on (the discovery document points the
driver at the JWKS there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

ISSUER = os.environ.get("FLOOR_ISSUER", "http://127.0.0.1:8000")
DISCOVERY = json.dumps(
    {"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks.json", "token_endpoint": ISSUER + "/token"}
).encode()
# The size of a JWKS with one RSA-2048 key.
JWKS = json.dumps(
    {"keys": [{"kty": "RSA", "kid": "k" * 43, "n": "n" * 342, "e": "AQAB", "use": "sig",
               "alg": "RS256"}]}
).encode()  # fmt: skip


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = DISCOVERY if environ["PATH_INFO"] == "/.well-known/openid-configuration" else JWKS
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
         ("Cache-Control", "public, max-age=300")],
    )  # fmt: skip
    return [body]
