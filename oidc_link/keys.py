"""ID-token signing keys that rotate on their own: next -> current -> previous -> retired.

The only module that touches private-key crypto. The schedule is computed from what Redis
holds, so every instance agrees on the signing key; a new key is published one JWKS cache
lifetime (plus a margin) before it signs, and stays published until every token it signed
has expired (plus the margin). Private keys are stored encrypted with the operator's
key-encryption key.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from oidc_link.clock import Clock
from oidc_link.config import KeySettings
from oidc_link.errors import StoreUnavailableError
from oidc_link.models import SigningKey
from oidc_link.sealed import decrypt, encrypt
from oidc_link.store import Store

log = logging.getLogger(__name__)

BACKUP_FORMAT = "oidc-link-keys/1"
# While Redis is unreachable, a due refresh is tried again this many seconds after it failed
# (not on every request: each try can cost a connection timeout), and the keys held in
# memory keep serving JWKS, discovery and signing meanwhile.
OUTAGE_RETRY_INTERVAL = 5
# RFC 7638 §3.2: the members of each key type that make up its thumbprint.
_THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


# The JWS algorithms keys sign with, by name (PyJWT's own objects).
_ALGORITHMS = get_default_algorithms()
# A JWT's claims as JSON, as PyJWT writes them: compact, members in the order given.
_json = json.JSONEncoder(separators=(",", ":")).encode
# base64's alphabet to base64url's (RFC 4648 §5).
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _segment(raw: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2): base64.urlsafe_b64encode's two steps,
    without its two Python wrappers (three segments per signed token)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=")


@functools.lru_cache(maxsize=32)
def _header_segment(kid: str, alg: str, typ: str) -> bytes:
    """A signing key's protected header, encoded: the same for every token it signs."""
    header = {"alg": alg, "kid": kid, "typ": typ}
    return _segment(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


# What verify() raises for a token it rejects (bad signature, unknown kid, expired...).
TokenError = jwt.PyJWTError


class KeyEncryptionError(Exception):
    """The key-encryption key does not open the stored keys: refuse to start, change nothing."""


@dataclass(frozen=True)
class KeyStatus:
    """A key as ``oidc-link keys list`` shows it."""

    key: SigningKey
    state: str  # next, current, previous
    retires_at: int | None


def jwk_thumbprint(public_jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members, sorted, without whitespace."""
    members = _THUMBPRINT_MEMBERS[public_jwk["kty"]]
    canonical = json.dumps({name: public_jwk[name] for name in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _generate_private_key(alg: str) -> Any:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_jwk(alg: str, private_key: Any) -> dict[str, str]:
    tool = {"ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}.get(alg, RSAAlgorithm)
    jwk = tool.to_jwk(private_key.public_key(), as_dict=True)
    return {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}


class SigningKeys:
    """Each instance's view of the key rings, refreshed from Redis on a timer."""

    def __init__(
        self, store: Store, clock: Clock, settings: KeySettings, token_lifetime: int
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._token_lifetime = token_lifetime
        self._kek = base64.urlsafe_b64decode(settings.encryption_key.encode())
        self._rings: dict[str, list[SigningKey]] = {}
        self._private: dict[str, Any] = {}
        self._loaded_at: int | None = None
        # The algorithms whose ring this process has recorded as existing (KeyringStore.record).
        self._recorded: set[str] = set()
        # Set while refreshes fail because Redis is unreachable: when to try again.
        self._outage_retry_at: int | None = None
        self._refreshing = threading.Lock()

    @property
    def lead_time(self) -> int:
        """How long a key is published before it signs: one JWKS cache lifetime, plus margin."""
        return self._settings.jwks_max_age + self._settings.margin

    # The lifecycle.

    def load(self) -> None:
        """Read the rings, restore, retire and rotate as the schedule says; start-up and timer."""
        if self._settings.development_encryption_key and self._loaded_at is None:
            log.warning(
                "Signing keys are encrypted with the built-in development key-encryption key; "
                "set OIDC_LINK_KEY_ENCRYPTION_KEY for anything but a demo."
            )
        rings = {alg: self._store.keyring.load(alg) for alg in self._settings.algorithms}
        # Every ring opens before anything is written: a wrong key-encryption key stops
        # start-up with all of Redis as it was, not with one algorithm's ring already changed.
        for ring in rings.values():
            self._open(ring)
        for alg, ring in rings.items():
            if not ring:
                self._recorded.discard(alg)  # Redis lost the ring: perhaps its record too
            if not ring and self._rings.get(alg):
                log.error(
                    "Redis holds no %s signing keys; restoring the %d this instance holds",
                    alg,
                    len(self._rings[alg]),
                )
                for key in self._rings[alg]:
                    self._store.keyring.add(key)
                ring = self._store.keyring.load(alg)
                self._open(ring)
            ring = self._retire_expired(ring)
            if self._schedule_next(alg, ring):
                ring = self._store.keyring.load(alg)
                self._open(ring)
            self._rings[alg] = ring
            if ring and alg not in self._recorded:
                # Once per process: rings from before the record existed get it too.
                try:
                    self._store.keyring.record(alg, self._clock.now())
                    self._recorded.add(alg)
                except StoreUnavailableError:
                    pass  # Redis refuses writes (full, read-only): at a later load, then
        self._loaded_at = self._clock.now()

    def refresh_if_due(self) -> None:
        # One refresh at a time per process: request threads that arrive together wait for
        # it rather than all reading and scheduling the same keys.
        with self._refreshing:
            now = self._clock.now()
            due = (
                self._loaded_at is None or now - self._loaded_at >= self._settings.refresh_interval
            )
            if not due or (self._outage_retry_at is not None and now < self._outage_retry_at):
                return
            try:
                self.load()
            except StoreUnavailableError as error:
                if self._loaded_at is None:
                    raise  # nothing in memory to serve
                if self._outage_retry_at is None:
                    log.warning(
                        "Cannot refresh signing keys: Redis %s. Serving the keys loaded %d s "
                        "ago until it is back.",
                        error.cause.replace("_", " "),
                        now - self._loaded_at,
                    )
                self._outage_retry_at = now + OUTAGE_RETRY_INTERVAL
                return
            if self._outage_retry_at is not None:
                self._outage_retry_at = None
                log.warning("Signing keys refreshed from Redis again")

    def ready(self) -> bool:
        """Whether every configured algorithm has a key signing now, judged from memory
        alone: the readiness probe asks this, and must not reload keys or touch Redis."""
        if self._loaded_at is None:
            return False
        now = self._clock.now()
        return all(
            self._current(self._rings.get(alg, []), now) for alg in self._settings.algorithms
        )

    def rotate(self, alg: str = "RS256", *, immediately: bool = False) -> SigningKey | None:
        """Schedule a new key one lead time from now, or, for a leaked key, sign with a new
        one at once and retire the current key (relying parties refetch on the unknown kid).
        Returns the new key, or None when a next key is already scheduled.
        """
        self.load()
        now = self._clock.now()
        ring = self._rings[alg]
        if immediately:
            leaked = self._current(ring, now)
            taken = {key.slot for key in ring}
            # Its own slot, never one the schedule or an earlier emergency already holds.
            slot = next(s for s in range(now, now + len(taken) + 2) if s not in taken)
            new = self._create(alg, slot=slot, signs_from=now)
            if new is not None and leaked is not None:
                self._store.keyring.remove(leaked)
                # kid as a field too: it tells the log mask this value is public.
                log.warning(
                    "Emergency rotation: %s key %s retired now",
                    alg,
                    leaked.kid,
                    extra={"event": "key.retired", "kid": leaked.kid},
                )
        elif any(key.signs_from > now for key in ring):
            return None
        else:
            new = self._create(alg, slot=now + self.lead_time, signs_from=now + self.lead_time)
        self.load()
        return new

    def retire(self, kid: str) -> SigningKey:
        """Remove a key that no longer signs; the current key can only go by ``rotate --now``."""
        self.load()
        now = self._clock.now()
        for ring in self._rings.values():
            for key in ring:
                if key.kid != kid:
                    continue
                if key is self._current(ring, now):
                    raise ValueError(f"{kid} is signing now: use 'rotate --now' to replace it")
                self._store.keyring.remove(key)
                self.load()
                return key
        raise KeyError(kid)

    # What the provider uses.

    def sign(self, claims: dict[str, Any], alg: str = "RS256", *, typ: str = "JWT") -> str:
        """Sign with the current key; ``typ`` types the JWT explicitly (RFC 8725 §3.11),
        e.g. ``logout+jwt`` for logout tokens (Back-Channel Logout 1.0 §2.4)."""
        self.refresh_if_due()
        key = self._current(self._rings.get(alg, []), self._clock.now())
        if key is None:
            raise RuntimeError(f"no current {alg} signing key")
        # What jwt.encode writes for these claims and headers, byte for byte (the header's
        # members sorted, as PyJWT sorts them), less its per-call checks and conversions
        # that our int-timed claims never need: PyJWT's algorithm object signs.
        payload = _segment(_json(claims).encode())
        signing_input = _header_segment(key.kid, alg, typ) + b"." + payload
        signature = _ALGORITHMS[alg].sign(signing_input, self._private[key.kid])
        return (signing_input + b"." + _segment(signature)).decode()

    def verify(
        self, token: str, audience: str | Sequence[str], *, check_expiry: bool = True
    ) -> dict[str, Any]:
        """Check one of our own tokens; an unknown kid makes this instance reload first.

        ``check_expiry=False`` is for hints (``id_token_hint``), which may have expired.
        ``audience`` may list several accepted audiences (any one must match).
        """
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._find(kid)
        if key is None:
            self.load()
            key = self._find(kid)
        if key is None:
            raise jwt.InvalidTokenError("unknown key id")
        public = jwt.PyJWK({**key.public_jwk, "alg": key.alg}).key
        # PyJWT would judge exp against the system clock; time comes from the injected clock.
        claims = jwt.decode(
            token,
            public,
            algorithms=[key.alg],
            audience=audience,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        now = self._clock.now()
        if check_expiry and "exp" in claims and now >= int(claims["exp"]):
            raise jwt.ExpiredSignatureError("Signature has expired")
        if "nbf" in claims and now < int(claims["nbf"]):
            raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
        return claims

    def signing_algorithms(self) -> list[str]:
        """The algorithms that have a current key, for discovery."""
        self.refresh_if_due()
        now = self._clock.now()
        return [alg for alg, ring in self._rings.items() if self._current(ring, now)]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every published key: current, next and previous; never a retired one."""
        return {"keys": [{**status.key.public_jwk} for status in self.statuses()]}

    def statuses(self) -> list[KeyStatus]:
        self.refresh_if_due()
        now = self._clock.now()
        statuses = []
        for ring in self._rings.values():
            current = self._current(ring, now)
            for key in ring:
                retires_at = self._retires_at(key, ring)
                if retires_at is not None and now >= retires_at:
                    continue
                state = (
                    "next" if key.signs_from > now else "current" if key is current else "previous"
                )
                statuses.append(KeyStatus(key, state, retires_at))
        order = {"current": 0, "next": 1, "previous": 2}
        return sorted(statuses, key=lambda s: (order[s.state], s.key.alg, -s.key.signs_from))

    # Backups.

    def export_backup(self) -> dict[str, Any]:
        """Every stored key, private parts still encrypted with the key-encryption key."""
        self.load()
        keys = [key for ring in self._rings.values() for key in ring]
        return {
            "format": BACKUP_FORMAT,
            "exported_at": self._clock.now(),
            "keys": [json.loads(key.to_record()) for key in keys],
        }

    def import_backup(self, backup: dict[str, Any]) -> int:
        """Restore keys missing from Redis; refuses the whole backup if any key won't open."""
        if backup.get("format") != BACKUP_FORMAT:
            raise ValueError(f"not an oidc-link key backup (format {BACKUP_FORMAT!r} expected)")
        keys = [SigningKey.from_record(json.dumps(raw)) for raw in backup.get("keys", [])]
        self._open(keys)
        added = sum(1 for key in keys if self._restore(key))
        self.load()
        return added

    def _restore(self, key: SigningKey) -> bool:
        """Add a backed-up key unless Redis holds it; True if it was added.

        An instance that found Redis empty has created a new first key in slot 0, which the
        backup's own first key also names. The backup's key must come back all the same (it
        signed tokens that are still out there), so it moves to a slot the schedule never
        uses: negative, from its own start. It then verifies as a previous key.
        """
        if any(stored.kid == key.kid for stored in self._store.keyring.load(key.alg)):
            return False
        if self._store.keyring.add(key):
            return True
        return self._store.keyring.add(replace(key, slot=-max(key.signs_from, 1)))

    # The schedule.

    def _schedule_next(self, alg: str, ring: list[SigningKey]) -> bool:
        """Create the next key when it is due; True if one was created (by anyone)."""
        now = self._clock.now()
        if not ring:
            self._announce_first_key(alg)
            self._create(alg, slot=0, signs_from=now)
            return True
        if any(key.signs_from > now for key in ring):
            return False
        current = self._current(ring, now)
        assert current is not None
        # The slot comes from shared data, so racing instances pick the same one.
        slot = current.signs_from + self._settings.rotation_period
        if now < slot - self.lead_time:
            return False
        self._create(alg, slot=slot, signs_from=max(slot, now + self.lead_time))
        return True

    def _announce_first_key(self, alg: str) -> None:
        """A new installation's first key is routine (INFO); a ring that existed and is gone
        is not (ERROR): tokens its keys signed stop verifying unless a backup comes back.

        Reached only when Redis holds no key of ``alg`` and this instance holds none in
        memory to write back (``load`` does that first). What tells the two apart is Redis's
        record of the rings it has held, kept apart from the rings. A Redis that lost
        everything, that record included, looks like a new installation: only an instance
        still running, or a backup, can know better.
        """
        if self._store.keyring.existed(alg):
            log.error(
                "The %s signing keys are gone from Redis and no running instance held them "
                "to write back: creating a new key. Tokens the lost keys signed no longer "
                "verify; restore a backup with 'oidc-link keys import'.",
                alg,
            )
        else:
            log.info("Creating the first %s signing key of this installation", alg)

    def _create(self, alg: str, *, slot: int, signs_from: int) -> SigningKey | None:
        private_key = _generate_private_key(alg)
        public = _public_jwk(alg, private_key)
        kid = jwk_thumbprint(public)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key = SigningKey(
            kid=kid,
            alg=alg,
            slot=slot,
            created_at=self._clock.now(),
            signs_from=signs_from,
            sealed_private=encrypt(self._kek, pem, f"{alg}:{kid}".encode()),
            public_jwk={**public, "kid": kid, "alg": alg, "use": "sig"},
        )
        if not self._store.keyring.add(key):
            return None  # another instance created this slot's key first
        # Routine, like a retirement: the schedule's and a new installation's keys. What is
        # not routine (an emergency rotation, keys gone) has its own line.
        log.info(
            "Created %s signing key %s, signing from %d",
            alg,
            kid,
            signs_from,
            extra={"event": "key.created", "kid": kid},
        )
        return key

    def _retire_expired(self, ring: list[SigningKey]) -> list[SigningKey]:
        now = self._clock.now()
        kept = []
        for key in ring:
            retires_at = self._retires_at(key, ring)
            if retires_at is not None and now >= retires_at:
                self._store.keyring.remove(key)
                log.info(
                    "Retired %s signing key %s",
                    key.alg,
                    key.kid,
                    extra={"event": "key.retired", "kid": key.kid},
                )
            else:
                kept.append(key)
        return kept

    def _retires_at(self, key: SigningKey, ring: list[SigningKey]) -> int | None:
        """When the last token ``key`` can have signed has expired, plus the margin."""
        later = [k.signs_from for k in ring if k.signs_from > key.signs_from]
        if not later:
            return None
        return min(later) + self._token_lifetime + self._settings.margin

    @staticmethod
    def _current(ring: list[SigningKey], now: int) -> SigningKey | None:
        """The deterministic choice: the key that most recently started signing."""
        started = [key for key in ring if key.signs_from <= now]
        return max(started, key=lambda k: (k.signs_from, k.slot)) if started else None

    def _find(self, kid: str | None) -> SigningKey | None:
        return next((k for ring in self._rings.values() for k in ring if k.kid == kid), None)

    def _open(self, keys: list[SigningKey]) -> None:
        """Decrypt private keys not yet in memory; a wrong key-encryption key stops here."""
        for key in keys:
            if key.kid in self._private:
                continue
            pem = decrypt(self._kek, key.sealed_private, f"{key.alg}:{key.kid}".encode())
            if pem is None:
                raise KeyEncryptionError(
                    f"The key-encryption key does not open {key.alg} key {key.kid}: check "
                    "OIDC_LINK_KEY_ENCRYPTION_KEY. Nothing was changed."
                )
            self._private[key.kid] = serialization.load_pem_private_key(pem, password=None)
