"""The secret mask: the rules that find each shape of secret in a log line's text, and what
replaces it. Every record passes through it (logs/__init__.py applies it); it is the safety
net behind the first rule, "never log a secret".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

REDACTED = "[redacted]"
# Extra fields whose values are public by definition and kept as they are: a key id is in
# the JWKS for anyone to read, and operators match it against ``oidc-link keys list``.
PUBLIC_FIELDS = frozenset({"kid"})

# --- The mask: each rule finds one shape of secret; the order matters. ---

# JWTs (ID tokens, logout tokens, client assertions): a base64url JSON header starts "eyJ".
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# Our /v1 API secret keys (sk_live_..., sk_test_...) and restricted keys.
_API_KEY = re.compile(r"\b([sr]k_(?:live|test))_[A-Za-z0-9_-]+")
# Credentials in an Authorization header (RFC 6750 §2.1 Bearer, RFC 7617 Basic).
_AUTHORIZATION = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A password in a URL's userinfo, such as redis://:secret@host (RFC 3986 §3.2.1).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@", re.IGNORECASE)
# A query string: it may hold a login_hint (an email), an id_token_hint, or at a client's
# callback an authorization code (RFC 6749 §4.1.2). Only a '?' glued to a path counts.
_QUERY = re.compile(r"(?<=[A-Za-z0-9/._~%-])\?[^\s\"'<>]+")
# name=value or "name": "value" where the name says it holds a secret (form bodies, reprs).
_SENSITIVE_FIELDS = (
    r"(?:access_token|refresh_token|id_token(?:_hint)?|logout_token|token|code(?:_verifier)?"
    r"|client_secret|client_assertion|secret|password|api_key|authorization|login_hint"
    r"|request_uri|csrf_token)"
)
# ``name: value`` counts only with the name quoted (JSON, a dict's repr): "status code: 400"
# in prose is no secret.
_NAMED_SECRET = re.compile(
    rf"""(?P<name>\b{_SENSITIVE_FIELDS}\s*=\s*|["']{_SENSITIVE_FIELDS}["']\s*:\s*)"""
    rf"""(?P<quote>["']?)[^\s"'&,;)}}\]]+""",
    re.IGNORECASE,
)
# An email address, also URL-encoded (%40); the domain stays, operators need it.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@|%40)"
    r"([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
)
# What our bearer secrets look like when nothing names them: new_secret() gives 32+
# base64url characters (codes, tokens, Account Link tokens, cookies). Short prefixed ids (req_,
# acct_, fam_) stay readable; a digest or thumbprint this long is masked too, harmlessly.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")


def _opaque(match: re.Match[str], public: frozenset[str] = frozenset()) -> str:
    value = match.group(0)
    if value in public:
        return value
    kinds = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )
    # Plain words (snake_case names, all-lowercase identifiers) are not secrets.
    return REDACTED if kinds >= 2 else value


# Whatever any rule below can match holds one of these characters or words, or a run of 32
# base64url characters: most fields of most lines (ids, routes, methods, request lines)
# have none and skip every regex. Checked with set and substring tests, which cost a
# fraction of one regex pass over the text. The last four are the letters that a rule
# ignoring case also takes for i, k and s (re's documentation, "IGNORECASE"): Basic spelt
# with a long s (U+017F) is matched as "Basic", and lower() would not show it.
_TRIGGER_CHARACTERS = frozenset("@?=:%\u0130\u0131\u017f\u212a")
_LONG_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32}")
_CASE_FOLDED = frozenset("\u0130\u0131\u017f\u212a")


def may_hold_secret(text: str) -> bool:
    """False only when no rule of the mask could match anything in ``text``."""
    if not _TRIGGER_CHARACTERS.isdisjoint(text):
        return True  # queries, name=value, URLs with a password, emails (also as %40)
    if "eyJ" in text or "k_live_" in text or "k_test_" in text:
        return True  # JWTs, API keys
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        return True  # Authorization credentials
    return len(text) >= 32 and _LONG_RUN.search(text) is not None  # opaque secrets


def _may_name_credentials(text: str) -> bool:
    lowered = text.lower()
    return "bearer" in lowered or "basic" in lowered or not _CASE_FOLDED.isdisjoint(text)


class _Rule(NamedTuple):
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    # True when the text holds what every match of the pattern holds: a rule whose mark is
    # absent cannot match, and is skipped. No replacement adds a mark (each writes
    # "[jwt]", "[redacted]" or "***" between pieces of its own match), so a mark absent
    # before the first rule stays absent.
    marked: Callable[[str], bool]


_RULES: tuple[_Rule, ...] = (
    _Rule(_JWT, "[jwt]", lambda text: "eyJ" in text),
    _Rule(
        _API_KEY, rf"\1_{REDACTED}", lambda text: "k_live_" in text or "k_test_" in text
    ),
    _Rule(_AUTHORIZATION, rf"\1 {REDACTED}", _may_name_credentials),
    _Rule(_URL_PASSWORD, rf"\1:{REDACTED}@", lambda text: "://" in text),
    _Rule(_QUERY, f"?{REDACTED}", lambda text: "?" in text),
    _Rule(
        _NAMED_SECRET,
        rf"\g<name>\g<quote>{REDACTED}",
        lambda text: "=" in text or ":" in text,
    ),
    _Rule(_EMAIL, r"\1***\2\3", lambda text: "@" in text or "%40" in text),
    _Rule(_OPAQUE, _opaque, lambda text: len(text) >= 32),
)


def mask(text: str, public: frozenset[str] = frozenset()) -> str:
    """``text`` with emails shortened to ``j***@example.com`` and secrets replaced; the
    ``public`` values (key ids the record names as such) are left as they are. Only the
    rules whose mark the text holds run (a masked email runs one regex, not eight)."""
    if not may_hold_secret(text):
        return text
    for pattern, replacement, marked in _RULES:
        if not marked(text):
            continue
        if replacement is _opaque and public:
            text = pattern.sub(lambda match: _opaque(match, public), text)
        else:
            text = pattern.sub(replacement, text)
    return text


def masked_email(email: str | None) -> str | None:
    """``jenny@example.com`` as ``j***@example.com``: for log calls that name a person."""
    return _EMAIL.sub(r"\1***\2\3", email) if email else email


def mask_value(value: Any) -> Any:
    """Mask every string inside ``value`` (dicts, lists, tuples, sets: to any depth)."""
    if isinstance(value, str):
        return mask(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {mask(str(key)): mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(item) for item in value]
    return mask(str(value))
