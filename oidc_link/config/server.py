"""The ``[server]`` table: how ``oidc-link serve`` runs the production server (oidc_link/server.py).

Where it listens, how many worker processes and threads, and its connection timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader

# Deployment settings the environment may override: (env var, key in [server]).
SERVER_ENV_OVERRIDES = (
    ("OIDC_LINK_SERVER_HOST", "host"),
    ("OIDC_LINK_SERVER_PORT", "port"),
    ("OIDC_LINK_SERVER_WORKERS", "workers"),
    ("OIDC_LINK_SERVER_THREADS", "threads"),
    ("OIDC_LINK_SERVER_KEEPALIVE", "keepalive"),
    ("OIDC_LINK_SERVER_GRACEFUL_TIMEOUT", "graceful_timeout"),
)
_WHOLE_NUMBERS = ("port", "workers", "threads", "keepalive", "graceful_timeout")


@dataclass(frozen=True)
class ServerSettings:
    """``[server]``; the ``serve`` command's flags override host, port, workers and threads."""

    # Loopback by default; a container or a host behind a load balancer sets 0.0.0.0.
    host: str = "127.0.0.1"
    port: int = 8000
    # Worker processes: each holds its own Redis connections; about one per CPU core.
    workers: int = 2
    # Threads per worker: a request waiting on Link (up to link.live.read_timeout) holds a
    # thread, not a core, so there are more threads than cores.
    threads: int = 8
    # Seconds an idle keep-alive connection stays open. Longer than the idle timeout of the
    # client pools and load balancers in front (AWS ALB: 60 s), so that they, not we, close
    # idle connections: otherwise a request can race our close and fail with a reset.
    keepalive: int = 75
    # Seconds a worker has after SIGTERM to finish its in-flight requests before it is killed.
    graceful_timeout: int = 30


def read_server_settings(reader: Reader, raw: Any) -> ServerSettings:
    table = dict(reader.table(raw, "server"))
    reader.reject_unknown(table, "server.", {key for _, key in SERVER_ENV_OVERRIDES})
    for variable, key in SERVER_ENV_OVERRIDES:
        value = reader.environ.get(variable)
        if not value:
            continue
        if key in _WHOLE_NUMBERS:
            if not value.strip().isdigit():
                reader.problem(variable, "must be a whole number")
                continue
            table[key] = int(value)
        else:
            table[key] = value
    defaults = ServerSettings()
    host = reader.text(table, "host", "server.host", required=False) or defaults.host
    port = table.get("port", defaults.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        # 0: any free port (tests); the log says which one was bound.
        reader.problem("server.port", "must be a port number from 0 to 65535")
        port = defaults.port
    return ServerSettings(
        host=host,
        port=port,
        workers=reader.positive_int(table, "workers", "server.workers", defaults.workers),
        threads=reader.positive_int(table, "threads", "server.threads", defaults.threads),
        keepalive=reader.positive_int(table, "keepalive", "server.keepalive", defaults.keepalive),
        graceful_timeout=reader.positive_int(
            table, "graceful_timeout", "server.graceful_timeout", defaults.graceful_timeout
        ),
    )
