"""Discovery and the JWKS: their content, their encoding (once per key set) and the headers
they are served with, for the Flask views (protocol.py) and the answer before Flask
(fast_path.py) alike, so that both serve the very same bytes.

Never anything secret, nothing that depends on who asks: the same for every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response

from oidc_link.config import LOCALES, SUPPORTED_SCOPES, Settings
from oidc_link.keys import SigningKeys
from oidc_link.oauth.claims import ACR_SMS_OTP
from oidc_link.oauth.client_keys import ASSERTION_ALGORITHMS
from oidc_link.oauth.grants import RESPONSE_MODES, TOKEN_AUTH_METHODS
from oidc_link.oauth.tokens import INTROSPECTION_AUTH_METHODS, REVOCATION_AUTH_METHODS

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"
PUBLIC_CACHE = "public, max-age=300"
# A GET carrying one of these (as WSGI names them) asks for a comparison with the ETag or a
# range (RFC 9110 §13.1, §14.2); without one, the answer is the whole document.
CONDITIONAL_REQUEST_HEADERS = frozenset(
    {
        "HTTP_IF_MATCH",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_IF_RANGE",
        "HTTP_RANGE",
    }
)


def discovery_document(issuer: str, signing_algorithms: list[str]) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3 (and RFC 8414 §2) provider metadata."""
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "revocation_endpoint": issuer + "/revoke",
        "revocation_endpoint_auth_methods_supported": list(REVOCATION_AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "introspection_endpoint": issuer + "/introspect",
        "introspection_endpoint_auth_methods_supported": list(INTROSPECTION_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "jwks_uri": issuer + JWKS_PATH,
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": signing_algorithms,
        "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
        # private_key_jwt assertions (OIDC Discovery §3, RFC 8414 §2).
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "at_hash",
            "email",
            "email_verified",
            "name",
            "address",
            "sid",
        ],
        "claim_types_supported": ["normal"],
        # OIDC Core §3.1.2.1: the pages' languages, each a catalogue (web/languages.py).
        "ui_locales_supported": list(LOCALES),
        "authorization_response_iss_parameter_supported": True,
        # OIDC Core §5.5; our one authentication context (oauth/claims.py).
        "claims_parameter_supported": True,
        "acr_values_supported": [ACR_SMS_OTP],
        "request_parameter_supported": False,
        # Only our own PAR URNs are accepted as request_uri, and PAR is announced by its
        # endpoint (RFC 9126 §5); this flag is about request objects fetched by reference
        # (OIDC Core §6.2), which we do not do.
        "request_uri_parameter_supported": False,
        "pushed_authorization_request_endpoint": issuer + "/par",
        "require_pushed_authorization_requests": False,
        # RP-Initiated Logout 1.0 §2.1, Back-Channel Logout 1.0 §2.1.
        "end_session_endpoint": issuer + "/logout",
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }
    return document


class EncodedDocuments:
    """Public JSON documents (discovery, JWKS) encoded once per content, with their ETag.

    Each is looked up by a key that names its content; the few there ever are (one per key
    rotation) are kept, and the cache starts over if it ever holds more than a handful.
    """

    LIMIT = 16

    def __init__(self, dumps: Callable[[Any], str]) -> None:
        """``dumps``: the app's JSON provider's (``app.json.dumps``), as jsonify encodes."""
        self._dumps = dumps
        self._bodies: dict[tuple[str, ...], tuple[bytes, str]] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def get(
        self, key: tuple[str, ...], document: Callable[[], Mapping[str, Any]]
    ) -> tuple[bytes, str]:
        found = self._bodies.get(key)
        if found is None:
            # Encoded as jsonify would: the app's JSON provider, and a final newline.
            body = (self._dumps(document()) + "\n").encode()
            found = (body, hashlib.sha256(body).hexdigest()[:32])
            if len(self._bodies) >= self.LIMIT:
                self._bodies.clear()
            self._bodies[key] = found
        return found


@dataclass(frozen=True)
class PublicDocument:
    """One encoded document and the headers its view sets. ``body`` is the very object
    the cache holds: the same one until the document changes."""

    body: bytes
    headers: tuple[tuple[str, str], ...]

    def response(self) -> Response:
        # Every header in one list: Werkzeug then neither derives the content type nor
        # looks for each header before setting it.
        return Response(self.body, headers=list(self.headers))


class PublicDocuments:
    """The app's discovery document and JWKS as its signing keys make them now."""

    def __init__(self, settings: Settings, keys: SigningKeys, dumps: Callable[[Any], str]) -> None:
        self._issuer = settings.issuer
        self._keys = keys
        self._encoded = EncodedDocuments(dumps)
        # Consistent with the rotation schedule: a new key is published at least this
        # long, plus a margin, before it signs (keys.py).
        self._jwks_cache = f"public, max-age={settings.keys.jwks_max_age}"

    def discovery(self) -> PublicDocument:
        algorithms = self._keys.signing_algorithms()
        # The document changes only with the signing algorithms (a key rotation): it is
        # encoded once per set of them, not on every request.
        body, _ = self._encoded.get(
            ("discovery", *algorithms), lambda: discovery_document(self._issuer, algorithms)
        )
        return PublicDocument(body, _public_json_headers(PUBLIC_CACHE))

    def jwks(self) -> PublicDocument:
        key_set = self._keys.jwks()
        # A key id names one public key (keys.py: the JWK thumbprint), so the published
        # kids say what the set holds: it is encoded, and its ETag computed, once per set.
        body, etag = self._encoded.get(
            ("jwks", *(key["kid"] for key in key_set["keys"])), lambda: key_set
        )
        return PublicDocument(body, _public_json_headers(self._jwks_cache, etag))


def _public_json_headers(
    cache_control: str, etag: str | None = None
) -> tuple[tuple[str, str], ...]:
    headers = (
        ("Content-Type", "application/json"),
        ("Cache-Control", cache_control),
        ("Access-Control-Allow-Origin", "*"),
    )
    if etag is None:
        return headers
    return (*headers, ("ETag", f'"{etag}"'))  # a strong validator (RFC 9110 §8.8.3)
