"""``log_format``, ``log_level`` and ``log_probe_requests``: how the process writes its log
(oidc_link/logs/) and which requests get a line of their own (web/request_log.py).

Read from the TOML file or, for commands without one (the demo), from the environment alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader
from oidc_link.logs import LOG_FORMATS, LOG_LEVELS

LOG_ENV_OVERRIDES = (
    ("OIDC_LINK_LOG_FORMAT", "log_format"),
    ("OIDC_LINK_LOG_LEVEL", "log_level"),
    ("OIDC_LINK_LOG_PROBE_REQUESTS", "log_probe_requests"),
)
# How a successful probe or document GET is recorded: only in the HTTP metric ("counter",
# the default) or also as a request log line ("line").
PROBE_REQUEST_MODES = ("counter", "line")


@dataclass(frozen=True)
class LogSettings:
    """``format`` None: the command's own default (json for ``serve``, text for the demo and
    ``serve --dev``), so a configuration file works for both without an edit."""

    format: str | None = None
    level: str = "INFO"
    probe_requests: str = "counter"

    @property
    def probe_lines(self) -> bool:
        """Whether a successful probe or document GET writes its request line."""
        return self.probe_requests == "line"

    def format_or(self, default: str) -> str:
        return self.format or default


def read_log_settings(reader: Reader, data: Mapping[str, Any]) -> LogSettings:
    """The top-level ``log_format``, ``log_level`` and ``log_probe_requests``, the
    environment winning."""
    table = {key: data[key] for _, key in LOG_ENV_OVERRIDES if key in data}
    for variable, key in LOG_ENV_OVERRIDES:
        if reader.environ.get(variable):
            table[key] = reader.environ[variable]
    log_format = reader.text(table, "log_format", required=False)
    if log_format is not None and log_format.lower() not in LOG_FORMATS:
        reader.problem("log_format", f"must be one of {', '.join(LOG_FORMATS)}")
        log_format = None
    level = (reader.text(table, "log_level", required=False) or "INFO").upper()
    if level not in LOG_LEVELS:
        reader.problem("log_level", f"must be one of {', '.join(LOG_LEVELS).lower()}")
        level = "INFO"
    probe_requests = (reader.text(table, "log_probe_requests", required=False) or "counter").lower()
    if probe_requests not in PROBE_REQUEST_MODES:
        reader.problem("log_probe_requests", f"must be one of {', '.join(PROBE_REQUEST_MODES)}")
        probe_requests = "counter"
    return LogSettings(
        format=log_format.lower() if log_format else None,
        level=level,
        probe_requests=probe_requests,
    )


def log_settings_from_environment(environ: Mapping[str, str] | None = None) -> LogSettings:
    """For commands that read no configuration file; a bad value falls back to the default
    rather than stop a command that only wants to print something."""
    return read_log_settings(Reader(os.environ if environ is None else environ), {})
