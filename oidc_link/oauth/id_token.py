"""ID tokens (OIDC Core §2, §3.1.3.6): the claims of a code exchange or a refresh, signed.

Owns which claims go in and with which algorithm; the keys sign, the grants decide when.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from collections.abc import Callable
from typing import Any

from oidc_link.clock import Clock
from oidc_link.config import Settings
from oidc_link.keys import SigningKeys
from oidc_link.models import AuthorizationCode, RefreshToken
from oidc_link.oauth.claims import authentication_claims, claims_for_scope
from oidc_link.oauth.claims_request import ID_TOKEN, parse_claims_request

# base64's alphabet to base64url's (RFC 4648 §5), as base64.urlsafe_b64encode maps it.
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class IdTokens:
    def __init__(self, settings: Settings, keys: SigningKeys, clock: Clock) -> None:
        self._settings = settings
        self._keys = keys
        self._clock = clock
        self._clients = {client.client_id: client for client in settings.clients}

    def issue(self, token: dict[str, Any], code: AuthorizationCode | RefreshToken) -> str:
        """The ID token of a code exchange, or of a refresh (then without a nonce)."""
        now = self._clock.now()
        claims: dict[str, Any] = {
            "iss": self._settings.issuer,
            "sub": code.subject,
            "aud": code.client_id,
            "iat": now,
            "exp": now + self._settings.lifetimes.id_token,
            "auth_time": code.identity.auth_time,
            "amr": list(code.identity.amr),
        }
        if isinstance(code, AuthorizationCode) and code.nonce:
            claims["nonce"] = code.nonce
        if code.sid:
            # Back-Channel Logout 1.0 §2.1 (and §2.4): the session the RP can be logged out of.
            claims["sid"] = code.sid
        client = self._clients.get(code.client_id)
        alg = client.id_token_signed_response_alg if client else "RS256"
        at_hash = half_hash(token["access_token"], alg)
        if at_hash is not None:
            claims["at_hash"] = at_hash
        # OIDC Core §5.5: claims the ``claims`` parameter asked for in the ID token too.
        requested = (
            parse_claims_request(code.claims).names(ID_TOKEN)
            if code.claims is not None
            else frozenset()
        )
        registered = client.scopes if client else ()
        scope = token.get("scope", code.scope)
        claims.update(claims_for_scope(code.identity, scope, requested, registered))
        claims.update(authentication_claims(code.identity))  # acr, in every ID token
        return self._keys.sign(claims, alg)


def half_hash(value: str, alg: str) -> str | None:
    """OIDC Core §3.1.3.6 ``at_hash``: base64url of the left half of the hash that matches
    the ID token's signing algorithm (its bits: SHA-256 for RS256; SHA-512 for EdDSA), as
    Authlib's ``create_half_hash`` finds it; None for an algorithm with no such hash."""
    hashing = _hash_of(alg)
    if hashing is None:
        return None
    hashed = hashing(value.encode()).digest()
    half = binascii.b2a_base64(hashed[: len(hashed) // 2], newline=False)
    return half.translate(_URLSAFE).rstrip(b"=").decode()


@functools.lru_cache(maxsize=16)
def _hash_of(alg: str) -> Callable[[bytes], Any] | None:
    if alg == "EdDSA":
        return hashlib.sha512
    return getattr(hashlib, f"sha{alg[2:]}", None)
