"""The ID-token signing key: created once, shared through the store, published as a JWKS.

The only module that touches private-key crypto. One persisted RS256 key for now; the
rotating lifecycle is issue 4.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from oidc_link.clock import Clock
from oidc_link.models import SigningKey
from oidc_link.store import Store

log = logging.getLogger(__name__)

ALGORITHM = "RS256"


def jwk_thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an RSA key: SHA-256 over its required members, in order."""
    canonical = json.dumps(
        {name: public_jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":")
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


def generate_signing_key(created_at: int) -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = {
        k: v
        for k, v in RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True).items()
        if k in ("kty", "n", "e")
    }
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(
        kid=jwk_thumbprint(public_jwk),
        alg=ALGORITHM,
        private_pem=pem,
        created_at=created_at,
        public_jwk=public_jwk,
    )


class SigningKeys:
    """Holds the signing key in memory after loading it (or creating it) once."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._key: SigningKey | None = None
        self._private: Any = None

    def load(self) -> None:
        """Load the shared key, creating it if Redis has none; safe with many instances."""
        key = self._store.load_signing_key(ALGORITHM)
        if key is None:
            candidate = generate_signing_key(self._clock.now())
            if self._store.add_signing_key(candidate):
                log.warning("Created a new %s signing key %s", ALGORITHM, candidate.kid)
            # Whoever won the SET NX race, everyone signs with the stored key.
            key = self._store.load_signing_key(ALGORITHM)
        if key is None:
            raise RuntimeError("the signing key vanished from Redis while it was being created")
        self._key = key
        self._private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)

    @property
    def _current(self) -> SigningKey:
        if self._key is None:
            self.load()
        assert self._key is not None
        return self._key

    @property
    def kid(self) -> str:
        return self._current.kid

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        key = self._current
        return {"keys": [{**key.public_jwk, "kid": key.kid, "alg": key.alg, "use": "sig"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self._current
        return jwt.encode(claims, self._private, algorithm=key.alg, headers={"kid": key.kid})
