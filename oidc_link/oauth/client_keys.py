"""The public keys of private_key_jwt clients: inline JWK Sets parsed at start-up, ``jwks_uri``
sets fetched over HTTP and cached in memory.

It answers "which of this client's keys may have signed with ``alg``/``kid``"; it does not
check assertions (client_assertion.py does) and never sees one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings
from oidc_link.errors import ConfigError, ConfigProblem
from oidc_link.outbound import Outbound, OutboundError, for_log

log = logging.getLogger(__name__)

# The JWS algorithms a client may sign its assertion with: asymmetric only, so that what
# we hold can never sign (no HS*, and never "none"). "Ed25519" is RFC 9864's fully
# specified name for what "EdDSA" means with an Ed25519 key.
ASSERTION_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
# RFC 7518 §3.3, §3.5: RSA keys of 2048 bits or more.
MIN_RSA_BITS = 2048

# jwks_uri: how long a fetched set is used before it is fetched again, and how often at
# most it is fetched when an assertion names a kid we do not know (the client rotated);
# the whole fetch (every redirect, the body) must end within FETCH_TIMEOUT seconds.
CACHE_SECONDS = 300
REFETCH_INTERVAL = 30
FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024
MAX_REDIRECTS = 3


class ClientKeysError(Exception):
    """A JWK Set that cannot authenticate a client (says why, never the keys)."""


class KeysUnavailableError(Exception):
    """A client's ``jwks_uri`` could not be fetched and nothing usable is cached."""


def _usable_for(key: Key, alg: str) -> bool:
    """Whether ``key`` can verify a signature made with ``alg`` (RFC 7517 §4.2-4.4, §5)."""
    if key.get("alg") not in (None, alg):
        return False
    if key.get("use") not in (None, "sig"):
        return False
    key_ops = key.get("key_ops")
    if key_ops is not None and "verify" not in key_ops:
        return False
    if alg in ("RS256", "PS256"):
        return isinstance(key, RSAKey)
    if alg == "ES256":
        return isinstance(key, ECKey) and key.get("crv") == "P-256"
    if alg in ("EdDSA", "Ed25519"):
        return isinstance(key, OKPKey) and key.get("crv") == "Ed25519"
    return False


def parse_key_set(data: Any) -> list[Key]:
    """The signing keys of a client's JWK Set, or ClientKeysError saying what is wrong.

    Keys of a type we do not know are ignored (RFC 7517 §5), as are encryption keys; a
    symmetric key, private key material or a short RSA key makes the whole set unusable,
    because it says the client has misunderstood what to publish.
    """
    raw_keys = data.get("keys") if isinstance(data, Mapping) else None
    if not isinstance(raw_keys, list):
        raise ClientKeysError("not a JWK Set: expected an object with a 'keys' list")
    keys: list[Key] = []
    for index, raw in enumerate(raw_keys):
        if not isinstance(raw, Mapping):
            raise ClientKeysError(f"key {index} is not a JSON object")
        kty = raw.get("kty")
        if kty == "oct":
            raise ClientKeysError(f"key {index} is symmetric ('oct'): only public keys can be used")
        if kty not in ("RSA", "EC", "OKP"):
            continue
        try:
            key = JWKRegistry.import_key(dict(raw))
        except (JoseError, ValueError, TypeError, KeyError):
            raise ClientKeysError(f"key {index} is not a valid {kty} JWK") from None
        if key.is_private:
            raise ClientKeysError(
                f"key {index} contains private key material: publish only the public key"
            )
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            raise ClientKeysError(f"key {index} is an RSA key shorter than {MIN_RSA_BITS} bits")
        if any(_usable_for(key, alg) for alg in ASSERTION_ALGORITHMS):
            keys.append(key)
    if not keys:
        raise ClientKeysError(
            "no usable signing key (RSA of 2048+ bits, EC P-256 or OKP Ed25519, not use=enc)"
        )
    return keys


def select_keys(keys: Iterable[Key], alg: str, kid: str | None) -> list[Key]:
    """The keys that may have made a signature with ``alg`` and header ``kid``.

    A ``kid`` picks the key(s) with that id; keys published without one stay candidates,
    since RFC 7515 §4.1.4 makes ``kid`` a hint. No ``kid``: every key of the right type.
    """
    usable = [key for key in keys if _usable_for(key, alg)]
    if kid is None:
        return usable
    return [key for key in usable if key.kid == kid] or [key for key in usable if key.kid is None]


def knows_kid(keys: Iterable[Key], kid: str) -> bool:
    return any(key.kid == kid for key in keys)


@dataclass
class _RemoteKeySet:
    """One ``jwks_uri``'s cached keys and when they were last fetched (or tried)."""

    uri: str
    keys: list[Key] | None = None
    fetched_at: int | None = None
    tried_at: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksFetcher:
    """GET a ``jwks_uri`` through the guarded outbound fetch (outbound.py): checked
    addresses at every hop, redirects to https only, one deadline and a size cap."""

    def __init__(self, outbound: Outbound | None = None) -> None:
        self._outbound = outbound or Outbound()

    def __call__(self, uri: str) -> list[Key]:
        """The keys published at ``uri``; ClientKeysError or OutboundError otherwise."""
        answer = self._outbound.get(
            uri,
            accept="application/jwk-set+json, application/json",
            deadline=FETCH_TIMEOUT,
            max_bytes=MAX_JWKS_BYTES,
            max_redirects=MAX_REDIRECTS,
        )
        if answer.status != 200:
            raise ClientKeysError(f"jwks_uri answered HTTP {answer.status}")
        try:
            document = json.loads(answer.body)
        except (ValueError, RecursionError):
            raise ClientKeysError("jwks_uri did not answer JSON") from None
        return parse_key_set(document)


class ClientKeys:
    """Every private_key_jwt client's public keys.

    Inline ``jwks`` are parsed here, once: a bad set stops start-up with a ConfigError
    naming the client. ``jwks_uri`` sets are fetched on first use, kept CACHE_SECONDS, and
    fetched again early (at most every REFETCH_INTERVAL) when an assertion names an
    unknown ``kid``. When a fetch fails the keys already cached stay in use.
    """

    def __init__(
        self, clients: Iterable[ClientSettings], clock: Clock, fetch: JwksFetcher | None = None
    ) -> None:
        self._clock = clock
        self._fetch = fetch or JwksFetcher()
        self._inline: dict[str, list[Key]] = {}
        self._remote: dict[str, _RemoteKeySet] = {}
        problems: list[ConfigProblem] = []
        # config/clients.py lets only private_key_jwt clients register keys.
        for client in clients:
            if client.jwks is not None:
                try:
                    self._inline[client.client_id] = parse_key_set(client.jwks)
                except ClientKeysError as error:
                    problems.append(ConfigProblem(f"client {client.client_id!r} jwks", str(error)))
            elif client.jwks_uri:
                self._remote[client.client_id] = _RemoteKeySet(client.jwks_uri)
        if problems:
            raise ConfigError(problems)

    def keys_for(self, client: ClientSettings, alg: str, kid: str | None) -> list[Key]:
        """The client's keys that may verify a signature with ``alg`` and ``kid``.

        Raises KeysUnavailableError when the client has no keys we can get at.
        """
        inline = self._inline.get(client.client_id)
        if inline is not None:
            return select_keys(inline, alg, kid)
        remote = self._remote.get(client.client_id)
        if remote is None:
            raise KeysUnavailableError(f"client {client.client_id!r} has no keys")
        return select_keys(self._remote_keys(remote, kid), alg, kid)

    def _remote_keys(self, remote: _RemoteKeySet, kid: str | None) -> list[Key]:
        # One lock per jwks_uri: concurrent assertions from one client share one fetch.
        with remote.lock:
            now = self._clock.now()
            stale = remote.fetched_at is None or now - remote.fetched_at >= CACHE_SECONDS
            unknown_kid = (
                kid is not None and remote.keys is not None and not knows_kid(remote.keys, kid)
            )
            may_try = remote.tried_at is None or now - remote.tried_at >= REFETCH_INTERVAL
            if (stale or unknown_kid) and may_try:
                remote.tried_at = now
                try:
                    remote.keys = self._fetch(remote.uri)
                    remote.fetched_at = now
                except (ClientKeysError, OutboundError) as error:
                    # Where (no query) and the reason, never the answer's text.
                    log.warning("Fetching jwks_uri %s failed: %s", for_log(remote.uri), error)
            if remote.keys is None:
                raise KeysUnavailableError(f"no keys from {for_log(remote.uri)}")
            return remote.keys
