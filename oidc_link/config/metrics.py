"""The ``[metrics]`` table: whether and where the Prometheus metrics are served.

The metrics listen on their own address, never on the provider's public one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader

# prometheus-client's own variable: it must be in the environment before the worker
# processes start, since the library reads it when first imported.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Deployment settings the environment may override: (env var, key in [metrics]).
METRICS_ENV_OVERRIDES = (
    ("OIDC_LINK_METRICS_ENABLED", "enabled"),
    ("OIDC_LINK_METRICS_HOST", "host"),
    ("OIDC_LINK_METRICS_PORT", "port"),
)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: off by default; when on, a scrape endpoint on a private address."""

    enabled: bool = False
    # Loopback by default: the metrics name clients and show traffic, so they stay private.
    host: str = "127.0.0.1"
    # Apart from the provider's own port (8000), so a firewall can keep it private.
    port: int = 9464
    # Where the worker processes of a pre-fork server share their values (from the
    # environment only; None: one process, values in memory).
    multiprocess_dir: str | None = None


def read_metrics(reader: Reader, raw: Any) -> MetricsSettings:
    table = dict(reader.table(raw, "metrics"))
    reader.reject_unknown(table, "metrics.", {"enabled", "host", "port"})
    defaults = MetricsSettings()
    environ = reader.environ
    for variable, key in METRICS_ENV_OVERRIDES:
        if environ.get(variable):
            table[key] = _from_environment(reader, variable, environ[variable], key)
    enabled = reader.flag(table, "enabled", "metrics.enabled")
    host = reader.text(table, "host", "metrics.host", required=False) or defaults.host
    port = table.get("port", defaults.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        reader.problem("metrics.port", "must be a port number from 1 to 65535")
        port = defaults.port
    return MetricsSettings(
        enabled=enabled,
        host=host,
        port=port,
        multiprocess_dir=environ.get(MULTIPROCESS_DIR_VARIABLE) or None,
    )


def _from_environment(reader: Reader, variable: str, value: str, key: str) -> Any:
    """An environment string as the TOML type the key expects; problems name the variable."""
    if key == "enabled":
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        reader.problem(variable, "must be true or false")
        return False
    if key == "port":
        if value.strip().isdigit():
            return int(value)
        reader.problem(variable, "must be a port number")
        return MetricsSettings.port
    return value
