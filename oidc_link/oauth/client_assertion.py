"""``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): a client
proves who it is with a JWT signed by one of its registered keys.

Registered with the Provider as an Authlib client authentication method, so every endpoint
that authenticates clients accepts it. Keys come from client_keys.py; the jti memory from
the store. Nothing here logs or stores an assertion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jws import CompactSignature, JWSRegistry, extract_compact, validate_compact
from joserfc.jwt import JWTClaimsRegistry

from oidc_link.clock import Clock
from oidc_link.oauth.claims import OAuthClient
from oidc_link.oauth.client_keys import ASSERTION_ALGORITHMS, ClientKeys, KeysUnavailableError
from oidc_link.store import Store

log = logging.getLogger(__name__)

PRIVATE_KEY_JWT = "private_key_jwt"
# RFC 7523 §2.2.
ASSERTION_TYPE = JWTBearerClientAssertion.CLIENT_ASSERTION_TYPE
# Clock skew allowed on exp, nbf and iat (RFC 7519 §4.1.4: "a few minutes" at most).
LEEWAY = 60
# An assertion is made for one request: a longer-lived one is refused, which also bounds
# how long its jti must be remembered.
MAX_LIFETIME = 3600
MAX_JTI_LENGTH = 256
# A client assertion is a few hundred bytes; this is far above any honest one.
MAX_ASSERTION_LENGTH = 8192
# draft-ietf-oauth-rfc7523bis: the explicit type of a client assertion made by its rules.
EXPLICIT_TYPE = "client-authentication+jwt"
NOT_VALID = "The client assertion is not valid."
MALFORMED = "The client assertion is malformed."


class _AssertionRegistry(JWSRegistry):
    """joserfc's JWS registry restricted to ASSERTION_ALGORITHMS, and quiet about "EdDSA"
    (RFC 9864 deprecates the name, not Ed25519 signatures, which clients still send)."""

    def get_alg(self, name: str) -> Any:
        if name not in ASSERTION_ALGORITHMS:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


def assertion_audiences(issuer: str) -> tuple[str, ...]:
    """What ``aud`` may name, whichever endpoint the assertion is presented at.

    The issuer (RFC 9126 §2 "SHOULD", draft-ietf-oauth-rfc7523bis), the token endpoint
    (OIDC Core §9: the audience "SHOULD be the URL of the Authorization Server's Token
    Endpoint") and the PAR endpoint (RFC 9126 §2 says it MUST be accepted there). Not the
    revocation or introspection endpoint: no specification names them as audiences. An
    assertion typed EXPLICIT_TYPE gets the draft's stricter rule: the issuer, alone.
    """
    return (issuer, issuer + "/token", issuer + "/par")


class RefusedAssertionError(Exception):
    """Why an assertion was refused, for the log; the client sees ``description`` only."""

    def __init__(self, reason: str, description: str = NOT_VALID) -> None:
        super().__init__(reason)
        self.description = description
        # The client the assertion claims to be from, once known (not yet proven).
        self.client_id: str | None = None


class PrivateKeyJWTAuthentication:
    """Authlib's client authentication hook for ``private_key_jwt``.

    Called as ``method(query_client, request)``: returns the client when the request carries
    no assertion at all (None: another method may apply) or a valid one; raises a 401
    ``invalid_client`` for any assertion it cannot accept.

    Not Authlib's JWTBearerClientAssertion: that class checks time with ``time.time()``
    rather than our Clock, says whether a client exists, takes one key per client with no
    ``kid`` or algorithm allow-list, and has no lifetime bound or ``client_id`` cross-check.
    """

    def __init__(self, issuer: str, keys: ClientKeys, store: Store, clock: Clock) -> None:
        self._issuer = issuer
        self._audiences = list(assertion_audiences(issuer))
        self._keys = keys
        self._store = store
        self._clock = clock
        self._registry = _AssertionRegistry()

    def __call__(
        self, query_client: Callable[[str], OAuthClient | None], request: OAuth2Request
    ) -> OAuthClient | None:
        data = request.payload.datalist
        if "client_assertion" not in data and "client_assertion_type" not in data:
            return None
        try:
            return self._authenticate(query_client, request)
        except RefusedAssertionError as refused:
            # The reason, and which client the request claimed to be: never the assertion.
            claimed = refused.client_id or request.form.get("client_id")
            log.info("Refused a client assertion (client %r): %s", _short(claimed), refused)
            raise InvalidClientError(status_code=401, description=refused.description) from None

    def _authenticate(
        self, query_client: Callable[[str], OAuthClient | None], request: OAuth2Request
    ) -> OAuthClient:
        # A repeated parameter, or a secret beside the assertion, never gets here: the
        # Provider refuses both as invalid_request first (request_shape.py).
        if request.form.get("client_assertion_type") != ASSERTION_TYPE:
            raise RefusedAssertionError(
                "wrong client_assertion_type",
                f"'client_assertion_type' must be {ASSERTION_TYPE}.",
            )
        assertion = request.form.get("client_assertion") or ""
        if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
            raise RefusedAssertionError("missing or oversized", "Missing 'client_assertion'.")
        signed, header, claims = self._parse(assertion)

        # RFC 7523 §3 items 1-2: iss and sub are both the client_id. Which client it is comes
        # from the (not yet verified) sub; nothing is believed before the signature checks.
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise RefusedAssertionError("no sub")
        try:
            return self._authenticate_as(client_id, query_client, request, signed, header, claims)
        except RefusedAssertionError as refused:
            refused.client_id = client_id
            raise

    def _authenticate_as(
        self,
        client_id: str,
        query_client: Callable[[str], OAuthClient | None],
        request: OAuth2Request,
        signed: CompactSignature,
        header: dict[str, Any],
        claims: dict[str, Any],
    ) -> OAuthClient:
        # RFC 7521 §4.2: a client_id parameter, when sent, names the same client.
        form_client_id = request.form.get("client_id")
        if form_client_id is not None and form_client_id != client_id:
            raise RefusedAssertionError("client_id parameter differs from sub")
        client = query_client(client_id)
        if client is None:
            raise RefusedAssertionError("unknown client")
        # A client uses the method it registered, and nothing else.
        if client.settings.token_endpoint_auth_method != PRIVATE_KEY_JWT:
            raise RefusedAssertionError(f"client {client_id!r} is not a {PRIVATE_KEY_JWT} client")

        self._verify_signature(client, signed, header)
        expires_at = self._check_claims(client_id, header, claims)
        # RFC 7523 §3 item 7, OIDC Core §9: a jti is accepted once. Last, so only an
        # otherwise valid assertion is remembered.
        if not self._store.tokens.remember_assertion_jti(
            client_id, claims["jti"], expires_at + LEEWAY
        ):
            raise RefusedAssertionError("jti replayed", "The client assertion was already used.")
        return client

    def _parse(self, assertion: str) -> tuple[CompactSignature, dict[str, Any], dict[str, Any]]:
        try:
            signed = extract_compact(assertion.encode(), registry=self._registry)
            header = dict(signed.headers())
            claims = json.loads(signed.payload)
        except (JoseError, ValueError, RecursionError):
            raise RefusedAssertionError("not a JWS", MALFORMED) from None
        if not isinstance(claims, dict):
            raise RefusedAssertionError("payload not an object", MALFORMED)
        return signed, header, claims

    def _verify_signature(
        self, client: OAuthClient, signed: CompactSignature, header: dict[str, Any]
    ) -> None:
        """RFC 7523 §3 item 9: signed by one of the client's keys with an asymmetric alg."""
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise RefusedAssertionError(f"alg {alg!r} not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise RefusedAssertionError("kid not a string")
        try:
            candidates = self._keys.keys_for(client.settings, alg, kid)
        except KeysUnavailableError as error:
            raise RefusedAssertionError(str(error), "The client's keys are unavailable.") from None
        for key in candidates:
            try:
                if validate_compact(signed, key, registry=self._registry):
                    return
            except JoseError:
                continue
        raise RefusedAssertionError(f"no key of the client verifies it (alg {alg}, kid {kid!r})")

    def _check_claims(self, client_id: str, header: dict[str, Any], claims: dict[str, Any]) -> int:
        """RFC 7523 §3 items 1-7 (OIDC Core §9); returns ``exp``."""
        registry = JWTClaimsRegistry(
            now=self._clock.now,
            leeway=LEEWAY,
            iss={"essential": True, "value": client_id},
            sub={"essential": True, "value": client_id},
            aud={"essential": True, "values": self._audiences},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            raise RefusedAssertionError(f"claims: {error.error}: {error.description}") from None
        # draft-ietf-oauth-rfc7523bis: a typed assertion names the issuer as a plain string.
        if header.get("typ") == EXPLICIT_TYPE and claims["aud"] != self._issuer:
            raise RefusedAssertionError(f"{EXPLICIT_TYPE} with an audience other than the issuer")
        now = self._clock.now()
        expires_at = int(claims["exp"])
        # The leeway here too: a client whose clock runs ahead makes a full-hour one.
        if expires_at - now > MAX_LIFETIME + LEEWAY:
            raise RefusedAssertionError("exp too far in the future")
        issued_at = claims.get("iat")
        if issued_at is not None and expires_at - issued_at > MAX_LIFETIME:
            raise RefusedAssertionError("lifetime (exp - iat) too long")
        if len(claims["jti"]) > MAX_JTI_LENGTH:
            raise RefusedAssertionError("jti too long")
        return expires_at


def _short(value: Any) -> str | None:
    """An unproven client id, cut short for the log."""
    return value[:100] if isinstance(value, str) else None
