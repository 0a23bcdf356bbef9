"""Settings: read once from the TOML file and the environment, validated with every problem at once.

Nothing else in oidc-link reads ``os.environ``; everything else receives a frozen ``Settings``.
Each table has its own module here; this one owns the top-level keys and puts them together.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oidc_link.config.clients import AUTH_METHODS, SUPPORTED_SCOPES, ClientSettings, read_clients
from oidc_link.config.keys import (
    DEVELOPMENT_KEY_ENCRYPTION_KEY,
    KEY_ENCRYPTION_KEY_VARIABLE,
    SIGNING_ALGORITHMS,
    KeySettings,
    read_keys,
)
from oidc_link.config.lifetimes import Lifetimes, read_lifetimes
from oidc_link.config.limits import REMOVED_LIMITS, SMS_COUNTING_LIMITS, Limits, read_limits
from oidc_link.config.link import (
    BODY_ENCODINGS,
    LINK_DIALECTS,
    LINK_MODES,
    LinkSettings,
    LiveLinkSettings,
    SandboxUser,
    read_link,
)
from oidc_link.config.locales import (
    LOCALES,
    accepted_locale,
    first_supported,
    read_default_locale,
    supported_locale,
)
from oidc_link.config.logs import LogSettings, log_settings_from_environment, read_log_settings
from oidc_link.config.metrics import MetricsSettings, read_metrics
from oidc_link.config.outbox import OutboxSettings, read_outbox
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

# The names importers take from oidc_link.config, wherever in config/ they live.
__all__ = [
    "AUTH_METHODS",
    "BODY_ENCODINGS",
    "DEVELOPMENT_KEY_ENCRYPTION_KEY",
    "KEY_ENCRYPTION_KEY_VARIABLE",
    "LINK_DIALECTS",
    "LINK_MODES",
    "LOCALES",
    "REMOVED_LIMITS",
    "SANDBOX_SUBJECT_SALT",
    "SIGNING_ALGORITHMS",
    "SMS_COUNTING_LIMITS",
    "SUPPORTED_SCOPES",
    "ClientSettings",
    "KeySettings",
    "Lifetimes",
    "Limits",
    "LinkSettings",
    "LiveLinkSettings",
    "LogSettings",
    "MetricsSettings",
    "OutboxSettings",
    "RedisSettings",
    "SandboxUser",
    "ServerSettings",
    "Settings",
    "accepted_locale",
    "first_supported",
    "load_settings",
    "log_settings_from_environment",
    "settings_from_mapping",
    "supported_locale",
]

# Used only in sandbox mode when no salt is configured; live mode must set its own.
SANDBOX_SUBJECT_SALT = "oidc-link-sandbox-subject-salt"

# Deployment settings that the environment may override: (env var, dotted field).
ENV_OVERRIDES = (
    ("OIDC_LINK_ISSUER", "issuer"),
    ("REDIS_URL", "redis_url"),
    ("OIDC_LINK_REDIS_URL", "redis_url"),
    ("OIDC_LINK_SUBJECT_SALT", "subject_salt"),
)


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
    # The hosted pages' language when neither ui_locales nor Accept-Language names one of
    # LOCALES (config/locales.py).
    default_locale: str = "en"
    # [redis]: TLS files and Sentinel credentials for redis_url (config/redis_settings.py).
    redis: RedisSettings = field(default_factory=RedisSettings)
    # Prometheus metrics on a separate, private address (config/metrics.py).
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    # log_format, log_level and log_probe_requests (config/logs.py; the oidc_link.logs package
    # writes the lines).
    logs: LogSettings = field(default_factory=LogSettings)
    # [server]: how `oidc-link serve` runs the production server (config/server.py).
    server: ServerSettings = field(default_factory=ServerSettings)
    # [outbox]: the relay and delivery threads every instance runs (config/outbox.py).
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
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
            "default_locale",
            "lifetimes",
            "limits",
            "keys",
            "link",
            "clients",
            "redis",
            "metrics",
            "log_format",
            "log_level",
            "log_probe_requests",
            "server",
            "outbox",
        },
    )
    issuer = _read_issuer(reader, data)
    redis_url = reader.text(data, "redis_url", required=False)
    redis_address = _read_redis_address(reader, redis_url)
    redis = read_redis_settings(reader, data.get("redis", {}), redis_url, redis_address)
    link = read_link(reader, data.get("link", {}))
    subject_salt = reader.text(data, "subject_salt", required=link.mode != "sandbox")
    lifetimes = read_lifetimes(reader, data.get("lifetimes", {}))
    limits = read_limits(reader, data.get("limits", {}), sandbox=link.mode == "sandbox")
    keys = read_keys(reader, data.get("keys", {}), required=link.mode != "sandbox")
    proxy_hops = reader.count(data, "proxy_hops", "proxy_hops", 0)
    max_clock_skew = reader.positive_int(data, "max_clock_skew", "max_clock_skew", 5)
    default_locale = read_default_locale(reader, data)
    clients = read_clients(reader, data.get("clients"), keys.algorithms)
    metrics = read_metrics(reader, data.get("metrics", {}))
    logs = read_log_settings(reader, data)
    server = read_server_settings(reader, data.get("server", {}))
    outbox = read_outbox(reader, data.get("outbox", {}))

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
        default_locale=default_locale,
        redis=redis,
        metrics=metrics,
        logs=logs,
        server=server,
        outbox=outbox,
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
