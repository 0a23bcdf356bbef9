"""Running the provider: gunicorn in production, Flask's (werkzeug's) reloader with ``--dev``.

The app is built in each gunicorn worker after the fork, so no Redis connection, lock or
thread crosses a fork; the master only checks once that Redis and the signing keys answer,
and serves the Prometheus metrics of all the workers.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from oidc_link import create_app
from oidc_link.backchannel import BackchannelDelivery
from oidc_link.config.metrics import MULTIPROCESS_DIR_VARIABLE

if TYPE_CHECKING:
    from flask import Flask
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

    from oidc_link.config import Settings
    from oidc_link.metrics import MetricsServer

log = logging.getLogger("oidc_link.server")


@dataclass(frozen=True)
class Listen:
    """What ``serve`` runs: the settings' ``[server]`` with the command's flags applied."""

    host: str
    port: int
    workers: int
    threads: int


def listen_from(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> Listen:
    """Flags win over ``[server]`` (and its environment variables)."""
    server = settings.server
    return Listen(
        host=server.host if host is None else host,
        port=server.port if port is None else port,
        workers=server.workers if workers is None else workers,
        threads=server.threads if threads is None else threads,
    )


def with_metrics_directory(settings: Settings) -> tuple[Settings, str | None]:
    """With metrics on and no ``PROMETHEUS_MULTIPROC_DIR``, make a fresh directory for the
    workers to share their values in, and name it in the environment they inherit.

    Call before anything imports prometheus_client (it reads the variable on import).
    Returns the settings that name the directory, and the directory to remove at exit.
    """
    metrics = settings.metrics
    if not metrics.enabled or metrics.multiprocess_dir:
        return settings, None
    directory = tempfile.mkdtemp(prefix="oidc-link-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
    return replace(settings, metrics=replace(metrics, multiprocess_dir=directory)), directory


def check_services(settings: Settings) -> None:
    """Load (or create) the signing keys once before any worker starts, on a connection
    closed again before the fork: a broken Redis or a wrong key-encryption key stops
    ``serve`` with a message instead of failing every worker, and the workers never race
    to create the first key."""
    from oidc_link.services import build_services
    from oidc_link.store import connect

    client = connect(settings.redis_url, settings.redis)
    try:
        build_services(settings, redis_client=client).keys.load()
    finally:
        client.close()


class _ProviderLog(glogging.Logger):
    """gunicorn's own lines (start, worker boot and exit, errors) go through the root logger,
    so they are JSON and masked like ours. No access log: the app writes one line per
    request (web/request_log.py)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.handlers.clear()
        self.error_log.propagate = True
        self.access_log.handlers.clear()
        self.access_log.propagate = False
        self.access_log.addHandler(logging.NullHandler())


class ProviderServer(BaseApplication):  # type: ignore[misc]
    """gunicorn's gthread workers: ``workers`` processes of ``threads`` threads each."""

    def __init__(self, settings: Settings, listen: Listen) -> None:
        self.settings = settings
        self.listen = listen
        self.metrics_server: MetricsServer | None = None
        # Per worker, set after the fork by load().
        self.backchannel: BackchannelDelivery | None = None
        super().__init__()

    def load_config(self) -> None:
        server = self.settings.server
        options = {
            "bind": [f"{self.listen.host}:{self.listen.port}"],
            "workers": self.listen.workers,
            "worker_class": "gthread",
            "threads": self.listen.threads,
            "keepalive": server.keepalive,
            "graceful_timeout": server.graceful_timeout,
            # Build the app in each worker, after the fork (see the module docstring).
            "preload_app": False,
            "proc_name": "oidc-link",
            # gunicorn's runtime control socket sits at one path per user: two instances on a
            # host would fight over it, and nothing here needs it (signals do the same).
            "control_socket_disable": True,
            "logger_class": _ProviderLog,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.logs.level.lower(),
            "when_ready": self._when_ready,
            "worker_exit": self._worker_exit,
            "on_exit": self._on_exit,
        }
        for name, value in options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        """In each worker: its own Redis connection pool, keys and back-channel threads."""
        self.backchannel = BackchannelDelivery()
        return create_app(self.settings, backchannel=self.backchannel)

    def _when_ready(self, arbiter: Arbiter) -> None:
        # In the master, once it listens and before the first worker forks.
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
        log.info(
            "oidc-link serving %s on http://%s:%d with %d worker(s) x %d thread(s)",
            self.settings.issuer,
            host,
            port,
            self.listen.workers,
            self.listen.threads,
        )
        self.metrics_server = start_metrics(self.settings)

    def _worker_exit(self, arbiter: Arbiter, worker: Worker) -> None:
        # In a stopping worker, after its in-flight requests: give queued back-channel
        # logout notices up to half the grace period to go out rather than drop them.
        if self.backchannel is not None:
            self.backchannel.wait_until_idle(self.settings.server.graceful_timeout / 2)
            self.backchannel.close()

    def _on_exit(self, arbiter: Arbiter) -> None:
        if self.metrics_server is not None:
            self.metrics_server.close()


def start_metrics(settings: Settings) -> MetricsServer | None:
    """The master's one ``/metrics`` endpoint, adding up every worker's values."""
    if not settings.metrics.enabled:
        return None
    from oidc_link.metrics import serve_metrics, wipe_shared_values

    # prometheus-client asks for an empty directory per run (before the workers start).
    wipe_shared_values(settings)
    return serve_metrics(settings)


def run_production_server(settings: Settings, listen: Listen) -> int:
    """Serve until SIGTERM (what ``docker stop`` and Kubernetes send): the workers finish
    their in-flight requests (up to ``graceful_timeout``), then the process exits 0.
    SIGINT and SIGQUIT stop at once; SIGHUP replaces the workers (with the same settings:
    restart the process to read the configuration again)."""
    settings, metrics_directory = with_metrics_directory(settings)
    try:
        check_services(settings)
        try:
            ProviderServer(settings, listen).run()
        except SystemExit as stop:
            # gunicorn's master ends with sys.exit(): 0 after a graceful stop.
            return stop.code if isinstance(stop.code, int) else 1
        return 0
    finally:
        if metrics_directory:
            shutil.rmtree(metrics_directory, ignore_errors=True)


def run_development_server(settings: Settings, listen: Listen) -> int:
    """``serve --dev``: one process, threads, restarted when a source file changes."""
    from werkzeug.serving import is_running_from_reloader, run_simple

    # The reloader's parent process only watches files and restarts its child, which
    # serves: the app (keys, Redis, sandbox) is built in the child alone.
    app = create_app(settings) if is_running_from_reloader() else _reloader_parent_app
    log.info("oidc-link (development) serving %s", settings.issuer)
    run_simple(listen.host, listen.port, app, use_reloader=True, threaded=True)
    return 0


def _reloader_parent_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    # Never called: werkzeug's reloader parent does not serve requests.
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"not the serving process\n"]
