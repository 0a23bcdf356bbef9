"""The ``[keys]`` table: which algorithms sign, the key rotation's timings, and the key that
encrypts private keys at rest. Only settings here; oidc_link/keys.py does the rotating."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader

# RS256 is always on: OpenID Connect Core §15.1 makes it mandatory to implement.
SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")
# Sandbox mode only, when no key-encryption key is configured: a known key is no secret,
# so the log says so at every start.
DEVELOPMENT_KEY_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktZW5jcnlwdGlvbi0="
# Overrides keys.encryption_key, so that the secret need not sit in the file.
KEY_ENCRYPTION_KEY_VARIABLE = "OIDC_LINK_KEY_ENCRYPTION_KEY"


@dataclass(frozen=True)
class KeySettings:
    """The signing-key lifecycle (``[keys]``); all durations in seconds."""

    algorithms: tuple[str, ...] = ("RS256",)
    rotation_period: int = 30 * 86_400
    # What we send as the JWKS Cache-Control max-age: how long an RP may keep our key set.
    jwks_max_age: int = 3600
    # Extra time on top of jwks_max_age before a new key signs, and after the last token
    # a key signed has expired before the key leaves the JWKS.
    margin: int = 3600
    refresh_interval: int = 60
    # 32 bytes, base64url; encrypts private keys at rest in Redis.
    encryption_key: str = DEVELOPMENT_KEY_ENCRYPTION_KEY
    development_encryption_key: bool = True


def read_keys(reader: Reader, raw: Any, *, required: bool) -> KeySettings:
    """[keys]; ``required``: the encryption key must be set (outside the sandbox)."""
    table = dict(reader.table(raw, "keys"))
    defaults = KeySettings()
    reader.reject_unknown(
        table,
        "keys.",
        {
            "algorithms",
            "rotation_period",
            "jwks_max_age",
            "margin",
            "refresh_interval",
            "encryption_key",
        },
    )
    if reader.environ.get(KEY_ENCRYPTION_KEY_VARIABLE):
        table["encryption_key"] = reader.environ[KEY_ENCRYPTION_KEY_VARIABLE]
    algorithms = reader.text_list(table, "algorithms", "keys.algorithms") or ()
    unknown = sorted(set(algorithms) - set(SIGNING_ALGORITHMS))
    if unknown:
        reader.problem("keys.algorithms", f"unsupported: {', '.join(unknown)}")
    chosen = tuple(a for a in SIGNING_ALGORITHMS if a == "RS256" or a in algorithms)

    def seconds(name: str) -> int:
        return reader.positive_int(table, name, f"keys.{name}", getattr(defaults, name))

    rotation_period, max_age = seconds("rotation_period"), seconds("jwks_max_age")
    margin, refresh = seconds("margin"), seconds("refresh_interval")
    if margin < refresh:
        reader.problem("keys.margin", "must be at least keys.refresh_interval")
    if rotation_period <= max_age + margin:
        reader.problem("keys.rotation_period", "must be longer than jwks_max_age + margin")
    secret = reader.text(table, "encryption_key", "keys.encryption_key", required=required)
    if secret is not None and not _is_key_encryption_key(secret):
        reader.problem("keys.encryption_key", "must be 32 random bytes in base64url (44 chars)")
    return KeySettings(
        algorithms=chosen,
        rotation_period=rotation_period,
        jwks_max_age=max_age,
        margin=margin,
        refresh_interval=refresh,
        encryption_key=secret or DEVELOPMENT_KEY_ENCRYPTION_KEY,
        development_encryption_key=secret is None,
    )


def _is_key_encryption_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode())) == 32
    except (ValueError, binascii.Error):
        return False
