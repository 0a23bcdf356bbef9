"""Settings: read once from the TOML file and the environment, validated with every problem at once.

Nothing else in oidc-link reads ``os.environ``; everything else receives a frozen ``Settings``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from oidc_link.config.clients import AUTH_METHODS, SUPPORTED_SCOPES, ClientSettings, read_clients
from oidc_link.config.logs import LogSettings, log_settings_from_environment, read_log_settings
from oidc_link.config.metrics import MetricsSettings, read_metrics
from oidc_link.config.reader import Reader, RecordingEnvironment, is_https_or_loopback
from oidc_link.config.redis_settings import (
    RedisAddress,
    RedisSettings,
    RedisUrlError,
    parse_redis_url,
    read_redis_settings,
)
from oidc_link.config.server import ServerSettings, read_server_settings
from oidc_link.errors import ConfigError, ConfigProblem

__all__ = [
    "AUTH_METHODS",
    "SUPPORTED_SCOPES",
    "ClientSettings",
    "LogSettings",
    "MetricsSettings",
    "RedisSettings",
    "ServerSettings",
    "Settings",
    "load_settings",
    "log_settings_from_environment",
    "settings_from_mapping",
]

LINK_MODES = ("sandbox", "live")
LINK_DIALECTS = ("loginwithlink", "stripe")
BODY_ENCODINGS = ("json", "form")
# RS256 is always on: OpenID Connect Core §15.1 makes it mandatory to implement.
SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")
# Sandbox mode only, when no key-encryption key is configured: a known key is no secret,
# so the log says so at every start.
DEVELOPMENT_KEY_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktZW5jcnlwdGlvbi0="
# Used only in sandbox mode when no salt is configured; live mode must set its own.
SANDBOX_SUBJECT_SALT = "oidc-link-sandbox-subject-salt"

_T = TypeVar("_T")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

# Deployment settings that the environment may override: (env var, dotted field).
ENV_OVERRIDES = (
    ("OIDC_LINK_ISSUER", "issuer"),
    ("REDIS_URL", "redis_url"),
    ("OIDC_LINK_REDIS_URL", "redis_url"),
    ("OIDC_LINK_SUBJECT_SALT", "subject_salt"),
)
KEY_ENCRYPTION_KEY_VARIABLE = "OIDC_LINK_KEY_ENCRYPTION_KEY"


@dataclass(frozen=True)
class SandboxUser:
    email: str
    phone: str
    name: str | None = None


@dataclass(frozen=True)
class LiveLinkSettings:
    """How to reach the real Link network (``[link.live]``)."""

    base_url: str
    publishable_key: str
    dialect: str = "loginwithlink"
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    # Extra attempts for safe calls only (lookups, and requests that never reached Link).
    max_retries: int = 2
    # The loginwithlink docs leave these two open; these are our defaults.
    body_encoding: str = "json"
    code_field: str = "code"


@dataclass(frozen=True)
class LinkSettings:
    mode: str = "sandbox"
    sandbox_users: tuple[SandboxUser, ...] = ()
    live: LiveLinkSettings | None = None


@dataclass(frozen=True)
class Limits:
    """Abuse limits; counts per window of seconds (DESIGN.md §4: counters live in Redis).

    None turns a limit off: the sandbox's default for the limits that count sent SMS
    (SMS_COUNTING_LIMITS), which it never sends. docs/security.md says what each one stops.
    """

    code_attempts: int = 5  # wrong codes per flow, then the flow ends
    resend_cooldown: int = 30  # seconds between two SMS in one flow
    resends: int = 3  # new codes per flow after the first
    # Codes to one email asked for from one client network (IPv4 address, IPv6 /64).
    sms_per_email: int | None = 5
    sms_per_email_window: int = 3600
    # Codes to one email from all networks together: short, as whoever fills it can keep
    # the email's owner from getting a code until the window ends.
    sms_per_email_ceiling: int | None = 10
    sms_per_email_ceiling_window: int = 300
    lookups_per_ip: int = 30  # per client network, as above
    lookups_per_ip_window: int = 600
    client_daily_sms: int | None = 10_000  # per client, per UTC day


# The limits that count sent SMS: off in the sandbox unless its [limits] sets them.
SMS_COUNTING_LIMITS = ("sms_per_email", "sms_per_email_ceiling", "client_daily_sms")
# [limits] settings that are gone, and what to set instead (check-config names it).
REMOVED_LIMITS = {
    "sms_per_phone": "it counted codes per redacted phone number (+1********23), which "
    "unrelated users share; remove it: sms_per_email (per email and client network) and "
    "sms_per_email_ceiling (per email, all networks) limit codes instead",
    "sms_per_phone_window": "remove it, with sms_per_phone; see sms_per_email_ceiling_window",
}


@dataclass(frozen=True)
class Lifetimes:
    """Seconds each kind of state lives."""

    flow: int = 600
    code: int = 60
    access_token: int = 3600
    id_token: int = 3600
    # The SSO session: ends after this long unused, and this long after the SMS sign-in.
    session_idle: int = 86_400
    session_absolute: int = 7 * 86_400
    # Refresh tokens: each one lives this long from its issue (rotation gives a fresh one).
    refresh_token: int = 30 * 86_400
    # How long a just-rotated refresh token may still be presented (concurrent refreshes).
    refresh_grace: int = 10
    # A pushed authorization request's request_uri (RFC 9126 §2.2: short-lived).
    pushed_request: int = 90
    # A user's approval of a third-party client, unless revoked sooner.
    consent: int = 365 * 86_400
    # Account Links and Login Links (issue 6; Stripe's defaults): until the first visit.
    account_link: int = 3600
    login_link: int = 300
    # The hosted account page after a Login Link's visit; ends sooner on "Sign out".
    account_session: int = 3600


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


@dataclass(frozen=True)
class Settings:
    issuer: str
    clients: tuple[ClientSettings, ...]
    link: LinkSettings = field(default_factory=LinkSettings)
    redis_url: str | None = None
    subject_salt: str = SANDBOX_SUBJECT_SALT
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    limits: Limits = field(default_factory=Limits)
    keys: KeySettings = field(default_factory=KeySettings)
    # How many reverse proxies (load balancers) stand in front of us and append to
    # X-Forwarded-For: the client address, used by the rate limits, is read past them.
    proxy_hops: int = 0
    # Seconds this instance's clock may differ from Redis's TIME before it logs an ERROR
    # and /readyz reports it (clock_skew.py): ID tokens carry times from this clock.
    max_clock_skew: int = 5
    # [redis]: TLS files and Sentinel credentials for redis_url (config/redis_settings.py).
    redis: RedisSettings = field(default_factory=RedisSettings)
    # Prometheus metrics on a separate, private address (config/metrics.py).
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # log_format and log_level (config/logs.py; oidc_link/logs.py writes the lines).
    logs: LogSettings = field(default_factory=LogSettings)
    # [server]: how `oidc-link serve` runs the production server (config/server.py).
    server: ServerSettings = field(default_factory=ServerSettings)
    # Environment variables the configuration read (present or not): their values are in
    # these settings, and a server's workers drop them from their environment (server.py).
    environment_names: frozenset[str] = frozenset()

    def client(self, client_id: str) -> ClientSettings | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry Secure when the issuer is https: a browser drops a Secure cookie
        set over plain http, which the development issuer on loopback is."""
        return self.issuer.startswith("https:")

    @property
    def is_sandbox(self) -> bool:
        return self.link.mode == "sandbox"


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file named by ``path`` or ``OIDC_LINK_CONFIG`` and apply the environment.

    ``environ`` defaults to the process environment: this is the one place that reads it.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get("OIDC_LINK_CONFIG")
    if not path:
        raise ConfigError(
            [
                ConfigProblem(
                    "config", "no configuration file: pass --config or set OIDC_LINK_CONFIG"
                )
            ]
        )
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("config", "file not found")], source) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem("config", f"cannot read: {error}")], source) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([ConfigProblem("config", f"not valid TOML: {error}")], source) from None
    return settings_from_mapping(data, environ, source)


def settings_from_mapping(
    data: Mapping[str, Any], environ: Mapping[str, str], source: str = "configuration"
) -> Settings:
    """Validate raw configuration data; raises ConfigError listing every problem found."""
    environ = RecordingEnvironment(environ)
    reader = Reader(environ)
    data = dict(data)
    for variable, name in ENV_OVERRIDES:
        if environ.get(variable):
            data[name] = environ[variable]

    reader.reject_unknown(
        data,
        "",
        {
            "issuer",
            "redis_url",
            "subject_salt",
            "proxy_hops",
            "max_clock_skew",
            "lifetimes",
            "limits",
            "keys",
            "link",
            "clients",
            "redis",
            "metrics",
            "log_format",
            "log_level",
            "server",
        },
    )
    issuer = _read_issuer(reader, data)
    redis_url = reader.text(data, "redis_url", required=False)
    redis_address = _read_redis_address(reader, redis_url)
    redis = read_redis_settings(reader, data.get("redis", {}), redis_url, redis_address)
    link = _read_link(reader, data.get("link", {}))
    subject_salt = reader.text(data, "subject_salt", required=link.mode != "sandbox")
    lifetimes = _read_lifetimes(reader, data.get("lifetimes", {}))
    limits = _read_limits(reader, data.get("limits", {}), sandbox=link.mode == "sandbox")
    keys = _read_keys(reader, data.get("keys", {}), required=link.mode != "sandbox")
    proxy_hops = reader.count(data, "proxy_hops", "proxy_hops", 0)
    max_clock_skew = reader.positive_int(data, "max_clock_skew", "max_clock_skew", 5)
    clients = read_clients(reader, data.get("clients"), keys.algorithms)
    metrics = read_metrics(reader, data.get("metrics", {}))
    logs = read_log_settings(reader, data)
    server = read_server_settings(reader, data.get("server", {}))

    if reader.problems:
        raise ConfigError(reader.problems, source)
    return Settings(
        issuer=issuer,
        clients=clients,
        link=link,
        redis_url=redis_url,
        subject_salt=subject_salt or SANDBOX_SUBJECT_SALT,
        lifetimes=lifetimes,
        limits=limits,
        keys=keys,
        proxy_hops=proxy_hops,
        max_clock_skew=max_clock_skew,
        redis=redis,
        metrics=metrics,
        logs=logs,
        server=server,
        environment_names=frozenset(environ.names),
    )


def _read_redis_address(reader: Reader, redis_url: str | None) -> RedisAddress | None:
    """The parsed ``redis_url``; a problem names what is wrong, never the URL's text."""
    if not redis_url:
        return None
    try:
        return parse_redis_url(redis_url)
    except RedisUrlError as error:
        reader.problem("redis_url", str(error))
        return None


def _read_issuer(reader: Reader, data: Mapping[str, Any]) -> str:
    issuer = reader.text(data, "issuer")
    if issuer is None:
        return ""
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        reader.problem("issuer", "must not have a query or fragment (OpenID Discovery 1.0 §2)")
    elif issuer.endswith("/"):
        reader.problem("issuer", "must not end with '/': relying parties compare it exactly")
    elif not is_https_or_loopback(issuer):
        reader.problem("issuer", "must be an https URL (http only on localhost/loopback)")
    return issuer


def _read_link(reader: Reader, raw: Any) -> LinkSettings:
    table = reader.table(raw, "link")
    reader.reject_unknown(table, "link.", {"mode", "sandbox", "live"})
    mode = reader.text(table, "mode", "link.mode", required=False) or "sandbox"
    if mode not in LINK_MODES:
        reader.problem("link.mode", f"must be one of {', '.join(LINK_MODES)}")
    sandbox = reader.table(table.get("sandbox", {}), "link.sandbox")
    reader.reject_unknown(sandbox, "link.sandbox.", {"users"})
    users_raw = sandbox.get("users", [])
    if not isinstance(users_raw, list):
        reader.problem("link.sandbox.users", "must be an array of tables ([[link.sandbox.users]])")
        users_raw = []
    users: list[SandboxUser] = []
    seen: set[str] = set()
    for index, raw_user in enumerate(users_raw):
        name = f"link.sandbox.users[{index}]"
        user = reader.table(raw_user, name)
        reader.reject_unknown(user, f"{name}.", {"email", "phone", "name"})
        email = reader.text(user, "email", f"{name}.email")
        phone = reader.text(user, "phone", f"{name}.phone")
        display = reader.text(user, "name", f"{name}.name", required=False)
        if email and not _EMAIL.match(email):
            reader.problem(f"{name}.email", "is not an email address")
        elif email and email.lower() in seen:
            reader.problem(f"{name}.email", "appears twice")
        if phone and not _E164.match(phone):
            reader.problem(f"{name}.phone", "must be in E.164 form, such as +14155550123")
        if email and phone:
            seen.add(email.lower())
            users.append(SandboxUser(email=email.lower(), phone=phone, name=display))
    live = _read_live_link(reader, table.get("live"), required=mode == "live")
    return LinkSettings(mode=mode, sandbox_users=tuple(users), live=live)


def _read_live_link(reader: Reader, raw: Any, *, required: bool) -> LiveLinkSettings | None:
    if raw is None:
        if required:
            reader.problem("link.live", "is required when link.mode is 'live'")
        return None
    table = reader.table(raw, "link.live")
    defaults = LiveLinkSettings(base_url="", publishable_key="")
    reader.reject_unknown(
        table,
        "link.live.",
        {
            "base_url",
            "publishable_key",
            "dialect",
            "connect_timeout",
            "read_timeout",
            "max_retries",
            "body_encoding",
            "code_field",
        },
    )
    base_url = reader.text(table, "base_url", "link.live.base_url") or ""
    if base_url and not is_https_or_loopback(base_url):
        reader.problem("link.live.base_url", "must be an https URL (http only on loopback)")
    key = reader.text(table, "publishable_key", "link.live.publishable_key") or ""
    if key and not key.startswith("pk_"):
        reader.problem("link.live.publishable_key", "must be a publishable key (pk_...)")
    dialect = reader.choice(table, "dialect", "link.live.dialect", LINK_DIALECTS)
    encoding = reader.choice(table, "body_encoding", "link.live.body_encoding", BODY_ENCODINGS)
    return LiveLinkSettings(
        base_url=base_url.rstrip("/"),
        publishable_key=key,
        dialect=dialect,
        connect_timeout=reader.positive_number(
            table, "connect_timeout", "link.live.connect_timeout", defaults.connect_timeout
        ),
        read_timeout=reader.positive_number(
            table, "read_timeout", "link.live.read_timeout", defaults.read_timeout
        ),
        max_retries=reader.count(
            table, "max_retries", "link.live.max_retries", defaults.max_retries
        ),
        body_encoding=encoding,
        code_field=reader.text(table, "code_field", "link.live.code_field", required=False)
        or defaults.code_field,
    )


def _read_keys(reader: Reader, raw: Any, *, required: bool) -> KeySettings:
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


def _read_limits(reader: Reader, raw: Any, *, sandbox: bool) -> Limits:
    """[limits]; in the sandbox, the limits that count sent SMS only when set here."""
    table = dict(reader.table(raw, "limits"))
    for name, instead in REMOVED_LIMITS.items():
        if table.pop(name, None) is not None:
            reader.problem(f"limits.{name}", f"was removed: {instead}")
    limits = _read_positive_ints(reader, table, "limits", Limits)
    if not sandbox:
        return limits
    unset = {name: None for name in SMS_COUNTING_LIMITS if name not in table}
    return dataclasses.replace(limits, **unset)


def _read_lifetimes(reader: Reader, raw: Any) -> Lifetimes:
    return _read_positive_ints(reader, raw, "lifetimes", Lifetimes)


def _read_positive_ints(reader: Reader, raw: Any, section: str, kind: type[_T]) -> _T:
    """A table whose every field is a positive whole number with a default in ``kind``."""
    table = reader.table(raw, section)
    defaults = kind()
    names = list(defaults.__dataclass_fields__)  # type: ignore[attr-defined]
    reader.reject_unknown(table, f"{section}.", set(names))
    return kind(
        **{
            name: reader.positive_int(table, name, f"{section}.{name}", getattr(defaults, name))
            for name in names
        }
    )
