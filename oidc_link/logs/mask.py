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


# Whatever any rule below can match holds one of "@?=:%", "eyJ", "k_live_", "k_test_",
# "bearer" or "basic" in any case, or a run of 32 base64url characters: most fields of
# most lines (ids, routes, methods, request lines) have none and skip every regex. Checked
# with substring tests, which cost a fraction of one regex pass over the text. These four
# are the letters that a rule ignoring case also takes for i, k and s (re's documentation,
# "IGNORECASE"): Basic spelt with a long s (U+017F) is matched as "Basic", and lower()
# would not show it.
_LONG_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32}")
_CASE_FOLDED = frozenset("\u0130\u0131\u017f\u212a")


def may_hold_secret(text: str) -> bool:
    """False only when no rule of the mask could match anything in ``text``."""
    # Queries, name=value, URLs with a password, emails (also as %40); JWTs, API keys. One
    # substring test per trigger: faster than the set's walk over the text for the short
    # texts most fields are.
    if (
        "@" in text
        or "?" in text
        or "=" in text
        or ":" in text
        or "%" in text
        or "eyJ" in text
        or "k_live_" in text
        or "k_test_" in text
    ):
        return True
    # The four letters a rule ignoring case takes for ASCII ones are not ASCII.
    if not text.isascii() and not _CASE_FOLDED.isdisjoint(text):
        return True
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


# The replacements that keep part of the match are functions, not templates such as
# "\\1***\\2\\3": re expands a template through Python code on every ``sub`` call, match or
# not (2.4 µs for a masked email that holds nothing to replace, 0.9 µs with a function,
# which runs only on a match). Every group they name takes part in every match.
def _api_key(match: re.Match[str]) -> str:
    return f"{match[1]}_{REDACTED}"


def _credentials(match: re.Match[str]) -> str:
    return f"{match[1]} {REDACTED}"


def _url_password(match: re.Match[str]) -> str:
    return f"{match[1]}:{REDACTED}@"


def _named_secret(match: re.Match[str]) -> str:
    return f"{match['name']}{match['quote']}{REDACTED}"


def _email(match: re.Match[str]) -> str:
    return f"{match[1]}***{match[2]}{match[3]}"


# The rules in the order they apply: ``mask`` applies them written out, each behind its mark.
_RULES: tuple[_Rule, ...] = (
    _Rule(_JWT, "[jwt]"),
    _Rule(_API_KEY, _api_key),
    _Rule(_AUTHORIZATION, _credentials),
    _Rule(_URL_PASSWORD, _url_password),
    _Rule(_QUERY, f"?{REDACTED}"),
    _Rule(_NAMED_SECRET, _named_secret),
    _Rule(_EMAIL, _email),
    _Rule(_OPAQUE, _opaque),
)


def mask(text: str, public: frozenset[str] = frozenset()) -> str:
    """``text`` with emails shortened to ``j***@example.com`` and secrets replaced; the
    ``public`` values (key ids the record names as such) are left as they are.

    Each rule of ``_RULES`` runs, in its order, only when the text holds its mark: what
    every match of its pattern holds, so a rule skipped could not have matched (a masked
    email runs one regex, not eight). No replacement adds a mark: each writes "[jwt]",
    "[redacted]" or "***" between pieces of its own match. Written out rather than looped
    over with a function per mark: 8 calls fewer for every text that shows a sign."""
    if not may_hold_secret(text):
        return text
    if "eyJ" in text:
        text = _JWT.sub("[jwt]", text)
    if "k_live_" in text or "k_test_" in text:
        text = _API_KEY.sub(_api_key, text)
    if _may_name_credentials(text):
        text = _AUTHORIZATION.sub(_credentials, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(_url_password, text)
    if "?" in text:
        text = _QUERY.sub(f"?{REDACTED}", text)
    if "=" in text or ":" in text:
        text = _NAMED_SECRET.sub(_named_secret, text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(_email, text)
    if len(text) >= 32:
        if public:
            text = _OPAQUE.sub(lambda match: _opaque(match, public), text)
        else:
            text = _OPAQUE.sub(_opaque, text)
    return text


def masked_email(email: str | None) -> str | None:
    """``jenny@example.com`` as ``j***@example.com``: for log calls that name a person."""
    return _EMAIL.sub(_email, email) if email else email


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
