"""The values oidc-link ships as examples (.env.example, deploy/, the docs), recognised here and
nowhere else, so that production refuses a copied sample. Says what they are, not what to do."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from oidc_link.ids import digest

# .env.example's key-encryption key: the right shape, spelling "EXAMPLE-ONLY-generate-your-own!!".
EXAMPLE_KEY_ENCRYPTION_KEY = "RVhBTVBMRS1PTkxZLWdlbmVyYXRlLXlvdXItb3duISE="
# What the shipped files put where a secret goes; the words a person would also write there.
_PLACEHOLDER_WORDS = re.compile(
    r"replace[-_ ]?(with|me)|change[-_ ]?me|your[-_ ](own|publishable|secret|key|password)"
    r"|example[-_ ]only|<[^>]*>|\.\.\.|\u2026",
    re.IGNORECASE,
)
# .env.example's placeholder for each secret generated with `openssl rand -hex 32`: known
# exactly, so that its SHA-256 (a client_secret_sha256 entry) is recognised too.
SHIPPED_SECRET_PLACEHOLDERS = ("replace-with-openssl-rand-hex-32",)
_PLACEHOLDER_DIGESTS = frozenset(digest(value) for value in (*SHIPPED_SECRET_PLACEHOLDERS, ""))
# Reserved for documentation (RFC 2606 §2 and §3): no one can serve real users there.
_DOCUMENTATION_DOMAINS = ("example", "example.com", "example.net", "example.org")


def is_placeholder(value: str) -> bool:
    """Text that marks a value still to be filled in, such as ``replace-with-...``."""
    return value == EXAMPLE_KEY_ENCRYPTION_KEY or bool(_PLACEHOLDER_WORDS.search(value))


def is_placeholder_digest(hex_digest: str) -> bool:
    """The SHA-256 of a shipped placeholder, or of nothing at all."""
    return hex_digest in _PLACEHOLDER_DIGESTS


def is_documentation_url(url: str) -> bool:
    """A URL on a domain reserved for examples: the samples' ``login.example.com`` and alike."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return any(host == domain or host.endswith("." + domain) for domain in _DOCUMENTATION_DOMAINS)
