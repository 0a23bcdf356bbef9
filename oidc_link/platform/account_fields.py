"""What an account's fields may hold, by Stripe's rules: its type, email and metadata
(merged as Stripe merges them), and the error that names a parameter to fix. Checks only;
storing is accounts.py's."""

from __future__ import annotations

import re
from typing import Any

from oidc_link.errors import PlatformError

ACCOUNT_TYPES = ("express", "custom")
# Stripe's metadata limits (docs.stripe.com/metadata): 50 keys, 40-character keys,
# 500-character values.
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
EMAIL_MAX_LENGTH = 254  # RFC 5321 §4.5.3.1.3: the longest usable address path
# No whitespace and no control characters (NUL, C0, DEL, C1): an Account Link prefills the
# email into the hosted form, which refuses them too.
_PART = r"[^@\s\x00-\x1f\x7f-\x9f]+"
_EMAIL = re.compile(rf"^{_PART}@{_PART}\.{_PART}$")


class AccountParameterError(PlatformError):
    """A parameter the caller must fix: which one, Stripe's code for the fault and a message
    (docs.stripe.com/api/errors)."""

    code = "parameter_invalid_string"


def checked_email(email: str) -> str:
    email = email.strip()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.match(email):
        raise AccountParameterError("email", "email_invalid", "Invalid email address.")
    return email


def checked_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """Stripe's rules: string keys and values within the limits; an empty value unsets
    the key, so on creation it is simply left out."""
    return merged_metadata({}, metadata)


def merged_metadata(current: dict[str, str], changes: dict[str, Any]) -> dict[str, str]:
    """``changes`` merged into ``current`` by Stripe's rules (docs.stripe.com/metadata):
    string keys and values within the limits, an empty value unsets its key, and at most
    50 keys in the result."""
    kept = dict(current)
    for key, value in changes.items():
        param = f"metadata[{key}]"
        if not isinstance(key, str) or not key or "[" in key or "]" in key:
            raise AccountParameterError(
                "metadata", "parameter_invalid_string", "Metadata keys must be non-empty text."
            )
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise AccountParameterError(
                param,
                "parameter_invalid_string",
                f"Metadata keys can have at most {METADATA_MAX_KEY_LENGTH} characters.",
            )
        if not isinstance(value, str):
            raise AccountParameterError(
                param, "parameter_invalid_string", "Metadata values must be strings."
            )
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise AccountParameterError(
                param,
                "parameter_invalid_string",
                f"Metadata values can have at most {METADATA_MAX_VALUE_LENGTH} characters.",
            )
        if value:
            kept[key] = value
        else:
            kept.pop(key, None)
    if len(kept) > METADATA_MAX_KEYS:
        raise AccountParameterError(
            "metadata",
            "parameter_invalid_string",
            f"Metadata can have at most {METADATA_MAX_KEYS} keys.",
        )
    return kept
