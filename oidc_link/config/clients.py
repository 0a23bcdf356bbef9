"""The ``[[clients]]`` tables: registered relying parties and how they authenticate."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from oidc_link.config.brand import BRAND_FIELDS, Brand, read_brand
from oidc_link.config.reader import Reader, is_https_or_loopback
from oidc_link.config.webhooks import WebhookEndpoint, read_webhooks
from oidc_link.ids import digest

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
# Methods that authenticate with a shared secret (the others carry none).
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
SUPPORTED_SCOPES = ("openid", "email", "profile", "address", "offline_access")
# An API secret key is configured only as its SHA-256 (`oidc-link hash-secret`); a client
# secret may be too.
_API_KEY_HASH = re.compile(r"^[0-9a-f]{64}$")
# Two at once: the new secret beside the old while the relying party switches over.
MAX_CLIENT_SECRETS = 2


@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    client_secret: str | None = None
    # The secrets as SHA-256 hex digests (`oidc-link hash-secret`): the secret itself is
    # stored nowhere here. With client_secret, at most MAX_CLIENT_SECRETS in all.
    client_secret_sha256: tuple[str, ...] = ()
    name: str | None = None
    scopes: tuple[str, ...] = SUPPORTED_SCOPES
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 - an algorithm name
    # Refresh tokens even without the offline_access scope (a client the operator trusts).
    refresh_tokens: bool = False
    # Clients of one owner that share a sector share ``sub`` values (OIDC Core §8.1).
    sector: str | None = None
    # Not the operator's own site: the user approves the scopes once (then remembered).
    third_party: bool = False
    # Authorization requests only through PAR (RFC 9126 §6).
    require_pushed_authorization_requests: bool = False
    # PKCE (S256) on every authorization request (RFC 9700 §2.1.1). False only for a legacy
    # confidential client that cannot send it; a public client always must.
    require_pkce: bool = True
    # private_key_jwt: the client's public keys, inline (a JWK Set) or fetched from a URL.
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    # RP-Initiated Logout 1.0 §3: where the user may be sent after logging out.
    post_logout_redirect_uris: tuple[str, ...] = ()
    # Back-Channel Logout 1.0 §2.2.
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    # /v1 API secret keys (sk_...), as SHA-256 hex digests; the keys themselves are never stored.
    api_keys: tuple[str, ...] = ()
    # [[clients.webhooks]]: where this client's events are delivered (config/webhooks.py).
    webhooks: tuple[WebhookEndpoint, ...] = ()
    # logo_uri, client_uri, policy_uri, tos_uri and accent_color (config/brand.py).
    brand: Brand = field(default_factory=Brand)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105

    @property
    def secret_digests(self) -> tuple[str, ...]:
        """The SHA-256 of every secret the client may authenticate with, plain or hashed."""
        plain = () if self.client_secret is None else (digest(self.client_secret),)
        return plain + self.client_secret_sha256

    @property
    def display_name(self) -> str:
        return self.name or self.client_id

    @property
    def subject_sector(self) -> str:
        """What pairwise ``sub`` values are computed for: the sector, else the client."""
        return self.sector or self.client_id


_CLIENT_FIELDS = {
    "client_id",
    "client_secret",
    "client_secret_sha256",
    "redirect_uris",
    "token_endpoint_auth_method",
    "name",
    "scopes",
    "id_token_signed_response_alg",
    "refresh_tokens",
    "sector",
    "third_party",
    "require_pushed_authorization_requests",
    "require_pkce",
    "jwks",
    "jwks_uri",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
    "api_keys",
    "webhooks",
    *BRAND_FIELDS,
}
_FLAGS = (
    "refresh_tokens",
    "third_party",
    "require_pushed_authorization_requests",
    "backchannel_logout_session_required",
)


def read_clients(
    reader: Reader, raw: Any, algorithms: tuple[str, ...]
) -> tuple[ClientSettings, ...]:
    if raw is None:
        reader.problem("clients", "at least one [[clients]] entry is required")
        return ()
    if not isinstance(raw, list):
        reader.problem("clients", "must be an array of tables ([[clients]])")
        return ()
    if not raw:
        reader.problem("clients", "at least one [[clients]] entry is required")
    clients: list[ClientSettings] = []
    seen: set[str] = set()
    for index, raw_client in enumerate(raw):
        client = _read_client(reader, raw_client, f"clients[{index}]", algorithms)
        if client is None:
            continue
        if client.client_id in seen:
            reader.problem(f"clients[{index}].client_id", f"{client.client_id!r} appears twice")
        seen.add(client.client_id)
        clients.append(client)
    return tuple(clients)


def _read_client(
    reader: Reader, raw: Any, name: str, algorithms: tuple[str, ...]
) -> ClientSettings | None:
    table = reader.table(raw, name)
    reader.reject_unknown(table, f"{name}.", _CLIENT_FIELDS)
    client_id = reader.text(table, "client_id", f"{name}.client_id")
    method = (
        reader.text(
            table,
            "token_endpoint_auth_method",
            f"{name}.token_endpoint_auth_method",
            required=False,
        )
        or "client_secret_basic"
    )
    if method not in AUTH_METHODS:
        reader.problem(
            f"{name}.token_endpoint_auth_method", f"must be one of {', '.join(AUTH_METHODS)}"
        )
    secret = reader.text(table, "client_secret", f"{name}.client_secret", required=False)
    hashes = _read_secret_hashes(reader, table, name)
    if method not in AUTH_METHODS:
        pass  # the method is already reported; which secret rule applies is unknown
    elif method not in SECRET_AUTH_METHODS:
        kind = "a public client (method 'none')" if method == "none" else f"a {method} client"
        for key in ("client_secret", "client_secret_sha256"):
            if key in table:
                reader.problem(f"{name}.{key}", f"{kind} has no secret")
    elif table.get("client_secret") in (None, "") and not table.get("client_secret_sha256"):
        # An empty string counts as missing: reader.text() turns it into None, and a
        # confidential client without a secret must not load.
        reader.problem(
            f"{name}.client_secret", f"is required for {method} (or client_secret_sha256)"
        )
    elif secret is not None and len(secret) < 16:
        reader.problem(f"{name}.client_secret", "must be at least 16 characters")

    redirect_uris = reader.text_list(table, "redirect_uris", f"{name}.redirect_uris")
    if not redirect_uris:
        reader.problem(f"{name}.redirect_uris", "at least one redirect URI is required")
    for uri in redirect_uris or ():
        problem = _redirect_uri_problem(uri)
        if problem:
            reader.problem(f"{name}.redirect_uris", f"{uri!r} {problem}")

    scopes = reader.text_list(table, "scopes", f"{name}.scopes")
    if scopes is not None:
        unknown = sorted(set(scopes) - set(SUPPORTED_SCOPES))
        if unknown:
            reader.problem(f"{name}.scopes", f"unsupported: {', '.join(unknown)}")
        if "openid" not in scopes:
            reader.problem(f"{name}.scopes", "must include 'openid'")
    display_name = reader.text(table, "name", f"{name}.name", required=False)
    field_name = f"{name}.id_token_signed_response_alg"
    alg = reader.text(table, "id_token_signed_response_alg", field_name, required=False)
    if alg is not None and alg not in algorithms:
        reader.problem(field_name, f"must be one of the enabled keys.algorithms: {algorithms}")
    flags = {flag: reader.flag(table, flag, f"{name}.{flag}") for flag in _FLAGS}
    require_pkce = reader.flag(table, "require_pkce", f"{name}.require_pkce", default=True)
    if not require_pkce and method == "none":
        # RFC 9700 §2.1.1: nothing else protects a public client's code from injection.
        reader.problem(
            f"{name}.require_pkce",
            "a public client (method 'none') must use PKCE: only confidential clients "
            "may set require_pkce = false",
        )
    sector = reader.text(table, "sector", f"{name}.sector", required=False)
    jwks, jwks_uri = _read_client_keys(reader, table, name, method)
    post_logout = reader.text_list(
        table, "post_logout_redirect_uris", f"{name}.post_logout_redirect_uris"
    )
    for uri in post_logout or ():
        problem = _redirect_uri_problem(uri)
        if problem:
            reader.problem(f"{name}.post_logout_redirect_uris", f"{uri!r} {problem}")
    backchannel = reader.text(
        table, "backchannel_logout_uri", f"{name}.backchannel_logout_uri", required=False
    )
    if backchannel:
        problem = _redirect_uri_problem(backchannel)
        if problem:
            reader.problem(f"{name}.backchannel_logout_uri", f"{backchannel!r} {problem}")
    api_keys = reader.text_list(table, "api_keys", f"{name}.api_keys") or ()
    for key_hash in api_keys:
        if not _API_KEY_HASH.match(key_hash):
            reader.problem(
                f"{name}.api_keys",
                "each entry must be a SHA-256 hash of a secret key: 64 lowercase hex characters "
                "(see `oidc-link hash-secret`)",
            )
    webhooks = read_webhooks(reader, table.get("webhooks"), name, client_id)
    brand = read_brand(reader, table, name, client_id)

    if client_id is None:
        return None
    return ClientSettings(
        client_id=client_id,
        redirect_uris=redirect_uris or (),
        token_endpoint_auth_method=method,
        client_secret=secret if method in SECRET_AUTH_METHODS else None,
        client_secret_sha256=hashes if method in SECRET_AUTH_METHODS else (),
        name=display_name,
        scopes=scopes if scopes is not None else SUPPORTED_SCOPES,
        id_token_signed_response_alg=alg if alg in algorithms else "RS256",
        sector=sector,
        jwks=jwks,
        jwks_uri=jwks_uri,
        post_logout_redirect_uris=post_logout or (),
        backchannel_logout_uri=backchannel,
        api_keys=api_keys,
        require_pkce=require_pkce,
        webhooks=webhooks,
        brand=brand,
        **flags,
    )


def _read_secret_hashes(reader: Reader, table: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """``client_secret_sha256``: SHA-256 hex digests, as many as MAX_CLIENT_SECRETS counting
    a plain ``client_secret``; more would only widen what a guess can match."""
    field_name = f"{name}.client_secret_sha256"
    hashes = reader.text_list(table, "client_secret_sha256", field_name) or ()
    if any(not _API_KEY_HASH.match(entry) for entry in hashes):
        reader.problem(
            field_name,
            "each entry must be the SHA-256 of a secret: 64 lowercase hex characters "
            "(see `oidc-link hash-secret`)",
        )
        return ()
    if len(set(hashes)) < len(hashes):
        reader.problem(field_name, "lists the same hash twice")
    given = len(hashes) + (table.get("client_secret") not in (None, ""))
    if given > MAX_CLIENT_SECRETS:
        reader.problem(
            field_name,
            f"a client has at most {MAX_CLIENT_SECRETS} secrets at once (client_secret "
            "included): the old one and the new one while rotating",
        )
    return hashes


def _read_client_keys(
    reader: Reader, table: Mapping[str, Any], name: str, method: str
) -> tuple[Mapping[str, Any] | None, str | None]:
    """``jwks`` or ``jwks_uri``: exactly one for private_key_jwt, neither otherwise.

    Only the shape is checked here; the oauth layer parses the keys themselves.
    """
    jwks = table.get("jwks")
    jwks_uri = reader.text(table, "jwks_uri", f"{name}.jwks_uri", required=False)
    if jwks is not None and not _is_jwk_set(jwks):
        reader.problem(f"{name}.jwks", "must be a JWK Set: a table with a non-empty 'keys' list")
        return None, jwks_uri
    if jwks_uri and not is_https_or_loopback(jwks_uri):
        reader.problem(f"{name}.jwks_uri", "must use https (http only on localhost/loopback)")
    if method == "private_key_jwt":
        if (jwks is None) == (jwks_uri is None):
            reader.problem(f"{name}.jwks", "private_key_jwt needs exactly one of jwks or jwks_uri")
    elif jwks is not None or jwks_uri:
        reader.problem(f"{name}.jwks", "client keys are only used with private_key_jwt")
    return (dict(jwks) if jwks is not None else None), jwks_uri


def _is_jwk_set(value: Any) -> bool:
    keys = value.get("keys") if isinstance(value, Mapping) else None
    return (
        isinstance(keys, list)
        and bool(keys)
        and all(isinstance(key, Mapping) and "kty" in key for key in keys)
    )


def _redirect_uri_problem(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "must not contain a fragment (RFC 6749 §3.1.2)"
    if not parts.scheme or not parts.netloc:
        return "must be an absolute URL"
    if not is_https_or_loopback(uri):
        return "must use https (http only on localhost/loopback)"
    return None
