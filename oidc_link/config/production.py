"""What production refuses: settings that are fine for the demo and ``serve --dev`` but would
lose state, sign nobody in for real, or guard real users with a sample's or a guessable secret.
Returns the problems, each naming its field; the caller decides to stop."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from oidc_link.config import DEVELOPMENT_KEY_ENCRYPTION_KEY, SANDBOX_SUBJECT_SALT
from oidc_link.config.placeholders import (
    is_documentation_url,
    is_placeholder,
    is_placeholder_digest,
)
from oidc_link.config.reader import is_https_or_loopback
from oidc_link.config.redis_settings import RedisUrlError, parse_redis_url
from oidc_link.config.strength import key_weakness, text_weakness
from oidc_link.errors import ConfigProblem

if TYPE_CHECKING:
    from oidc_link.config import ClientSettings, Settings

# A plain client_secret shorter than this is refused; a hashed one cannot be measured.
CLIENT_SECRET_MINIMUM = 32
_PLACEHOLDER = "is a placeholder from the samples (.env.example, deploy/)"


def production_problems(settings: Settings, *, allow_sandbox: bool = False) -> list[ConfigProblem]:
    """Every reason these settings must not serve real users, all at once.

    ``allow_sandbox``: staging and benchmarks run the production server with the sandbox
    Link network; the other rules still hold.
    """
    problems: list[ConfigProblem] = []
    if not settings.redis_url:
        problems.append(
            ConfigProblem(
                "redis_url",
                "is required in production (set REDIS_URL): without it an embedded fakeredis "
                "keeps sign-ins, tokens and signing keys in one process's memory, lost at "
                "restart and not shared between workers",
            )
        )
    if settings.link.mode == "sandbox" and not allow_sandbox:
        problems.append(
            ConfigProblem(
                "link.mode",
                "is 'sandbox', which signs in made-up users with codes printed to the log: "
                'set link.mode = "live" (or pass --allow-sandbox for staging and benchmarks)',
            )
        )
    # Also refused by the configuration itself; kept here so the production rules are whole
    # in one place (OpenID Connect Discovery 1.0 §3: the issuer is an https URL).
    if not is_https_or_loopback(settings.issuer):
        problems.append(
            ConfigProblem("issuer", "must be an https URL in production (http only on loopback)")
        )
    problems += _placeholder_problems(settings)
    problems += _secret_problems(settings)
    for index, client in enumerate(settings.clients):
        problems += _client_problems(f"clients[{index}]", client)
        if not settings.is_sandbox:
            problems += _inner_fetch_problems(f"clients[{index}]", client)
    return problems


def _inner_fetch_problems(name: str, client: ClientSettings) -> list[ConfigProblem]:
    """URIs the server itself fetches must be public outside sandbox mode: outbound.py refuses
    loopback and private hosts then, so such a client would only fail at its first fetch."""
    fetched = {"jwks_uri": client.jwks_uri, "backchannel_logout_uri": client.backchannel_logout_uri}
    fetched |= {f"webhooks[{index}].url": hook.url for index, hook in enumerate(client.webhooks)}
    return [
        ConfigProblem(
            f"{name}.{field}",
            f"{uri!r} is on a loopback or private address, which the server refuses to fetch "
            "outside sandbox mode (it could reach internal services): give a public https URL",
        )
        for field, uri in fetched.items()
        if uri and _is_inner_host(urlsplit(uri).hostname or "")
    ]


def _is_inner_host(host: str) -> bool:
    """A literal loopback, private or link-local address, or localhost; names that resolve
    to one are caught by outbound.py when fetched."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global


def _placeholder_problems(settings: Settings) -> list[ConfigProblem]:
    """The samples' addresses and values that are not secrets but still must be replaced."""
    problems: list[ConfigProblem] = []
    if is_documentation_url(settings.issuer):
        problems.append(ConfigProblem("issuer", _example_domain(settings.issuer)))
    live = settings.link.live
    if live is not None and is_documentation_url(live.base_url):
        problems.append(ConfigProblem("link.live.base_url", _example_domain(live.base_url)))
    if live is not None and is_placeholder(live.publishable_key):
        problems.append(
            ConfigProblem(
                "link.live.publishable_key",
                f"{_PLACEHOLDER}: set your own publishable key from Link (pk_live_...)",
            )
        )
    if _redis_password_is_placeholder(settings.redis_url):
        # Never the URL itself: it holds the password.
        problems.append(
            ConfigProblem(
                "redis_url",
                "has a placeholder password from .env.example (REDIS_PASSWORD): generate one "
                "(openssl rand -hex 32) and set it on Redis too",
            )
        )
    if settings.redis.sentinel_password and is_placeholder(settings.redis.sentinel_password):
        problems.append(
            ConfigProblem("redis.sentinel_password", f"{_PLACEHOLDER}: set the real password")
        )
    return problems


def _secret_problems(settings: Settings) -> list[ConfigProblem]:
    """The subject salt and the key-encryption key must be generated: 32 random bytes each.

    In sandbox mode an unset salt or key falls back to a built-in development value, which
    ``--allow-sandbox`` accepts (the users are made up); anything configured is checked.
    """
    problems: list[ConfigProblem] = []
    salt, keys = settings.subject_salt, settings.keys
    if not (settings.is_sandbox and salt == SANDBOX_SUBJECT_SALT):
        weakness = _salt_weakness(salt)
        if weakness:
            problems.append(
                ConfigProblem(
                    "subject_salt",
                    f"{weakness}: it must hold 32 random bytes, such as 64 hex characters "
                    "(openssl rand -hex 32)",
                )
            )
    if not (settings.is_sandbox and keys.development_encryption_key):
        weakness = _encryption_key_weakness(keys.encryption_key)
        if weakness:
            problems.append(
                ConfigProblem(
                    "keys.encryption_key",
                    f"{weakness}: it must be 32 random bytes (oidc-link keys generate-kek)",
                )
            )
    return problems


def _salt_weakness(salt: str) -> str | None:
    if is_placeholder(salt):
        return _PLACEHOLDER
    if salt == SANDBOX_SUBJECT_SALT:
        return "is the sandbox's built-in salt, which is no secret"
    return text_weakness(salt)


def _encryption_key_weakness(encryption_key: str) -> str | None:
    """Decoded as the configuration and the key ring read it (base64url, 32 bytes checked)."""
    if encryption_key == DEVELOPMENT_KEY_ENCRYPTION_KEY:
        return "is the development key built into oidc-link, which is no secret"
    if is_placeholder(encryption_key):
        return _PLACEHOLDER
    try:
        key = base64.urlsafe_b64decode(encryption_key.encode())
    except (ValueError, binascii.Error):
        return "does not decode as base64url"
    if len(key) != 32:
        return f"decodes to {len(key)} bytes, not 32"
    return key_weakness(key)


def _client_problems(name: str, client: ClientSettings) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    secret = client.client_secret
    if secret is not None and is_placeholder(secret):
        problems.append(
            ConfigProblem(
                f"{name}.client_secret",
                f"{_PLACEHOLDER}: generate one (openssl rand -hex 32)",
            )
        )
    elif secret is not None and len(secret) < CLIENT_SECRET_MINIMUM:
        problems.append(
            ConfigProblem(
                f"{name}.client_secret",
                f"must be at least {CLIENT_SECRET_MINIMUM} characters in production "
                "(openssl rand -hex 32 gives 64; or give its SHA-256 in client_secret_sha256)",
            )
        )
    if any(is_placeholder_digest(entry) for entry in client.client_secret_sha256):
        problems.append(
            ConfigProblem(
                f"{name}.client_secret_sha256",
                "holds the SHA-256 of a placeholder from .env.example or of an empty secret",
            )
        )
    uris = {
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "backchannel_logout_uri": (client.backchannel_logout_uri or "",),
        "jwks_uri": (client.jwks_uri or "",),
    }
    uris |= {f"webhooks[{index}].url": (hook.url,) for index, hook in enumerate(client.webhooks)}
    for field, values in uris.items():
        problems += [
            ConfigProblem(f"{name}.{field}", _example_domain(uri))
            for uri in values
            if uri and is_documentation_url(uri)
        ]
    return problems


def _example_domain(url: str) -> str:
    return (
        f"{url!r} is on a domain reserved for examples (RFC 2606): the samples' placeholder, "
        "to be replaced with the real address"
    )


def _redis_password_is_placeholder(redis_url: str | None) -> bool:
    if not redis_url:
        return False
    try:
        password = parse_redis_url(redis_url).password
    except RedisUrlError:
        return False  # the configuration reports a bad URL itself
    return password is not None and is_placeholder(password)
