"""Running the provider: granian in production, Flask's (werkzeug's) reloader with ``--dev``.

granian parses HTTP in Rust and hands each request to the WSGI app on one of a worker's
threads; per request it costs about a quarter of what gunicorn's gthread worker did (numbers
in docs/operations.md "Why granian"). The app is built in each worker process after the fork,
so no Redis connection, lock or thread crosses a fork; the main process only checks once that
Redis and the signing keys answer, and serves the Prometheus metrics of all the workers.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing.util
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server

from oidc_link import create_app
from oidc_link.config.metrics import MULTIPROCESS_DIR_VARIABLE

if TYPE_CHECKING:
    from oidc_link.config import Settings
    from oidc_link.metrics import MetricsServer
    from oidc_link.services import Services

log = logging.getLogger("oidc_link.server")

# granian's own lines (start, workers spawned and stopped, errors) go to the root logger, so
# they are JSON and masked like ours; its access log stays off (web/request_log.py writes
# one line per request).
GRANIAN_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    },
}
# A worker stopping gives its outbox threads this share of the grace period to finish the
# attempts under way (an attempt cut short is taken over by another consumer later).
OUTBOX_SHARE_OF_GRACE = 0.5


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


class AddressInUseError(OSError):
    """Another process listens on the address ``serve`` was given."""


def claim_address(listen: Listen) -> Listen:
    """Check that no other process listens on the address, and pick a port for port 0.

    granian's workers each bind the port with ``SO_REUSEPORT``, which would let a second
    server (a forgotten old instance) silently take half the traffic, so a probe binds
    first, without ``SO_REUSEPORT``: any live listener makes that fail with "address in
    use". The probe does set ``SO_REUSEADDR``, as servers do: on Linux that lets it past the
    connections a stopped instance left in TIME_WAIT (or FIN_WAIT) for up to a minute, so a
    restart serves at once, while a listening socket still refuses it. Port 0 becomes one
    free port here, so that every worker listens on the same one.
    """
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((listen.host, listen.port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AddressInUseError(
                    error.errno, f"{listen.host}:{listen.port} is already in use"
                ) from error
            raise
        port = probe.getsockname()[1]
    return replace(listen, port=port)


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


def build_worker_app(settings: Settings) -> Callable[..., Any]:
    """In each worker, after the fork: its own Redis connection pool and keys. (Back-channel
    logout notices are on the outbox: a stopping worker has none to finish.)"""
    from oidc_link.services import build_services

    forget_configuration_environment(settings, os.environ)
    services = build_services(settings)
    return with_outbox_running(settings, services, create_app(settings, services))


def with_outbox_running(
    settings: Settings, services: Services, app: Callable[..., Any]
) -> Callable[..., Any]:
    """Start this worker's outbox threads (``[outbox] deliver``), to stop when the process
    ends: multiprocessing's finalizer, as granian has no worker-exit hook. An attempt under
    way gets a share of the grace period; one cut short is taken over by another consumer
    once its claim timeout passes."""
    if settings.outbox.deliver:
        services.outbox.start()
        grace = settings.server.graceful_timeout * OUTBOX_SHARE_OF_GRACE
        multiprocessing.util.Finalize(None, partial(services.outbox.stop, grace), exitpriority=20)
    return app


def forget_configuration_environment(
    settings: Settings, environ: MutableMapping[str, str]
) -> None:
    """Drop from a worker's environment every variable the configuration read: their values
    are in ``settings`` already, and granian copies the process environment into each
    request's WSGI environ, where a key-encryption key or a client secret has no business.
    The metrics directory stays: prometheus-client reads it whenever it adds a series."""
    for name in settings.environment_names - {MULTIPROCESS_DIR_VARIABLE}:
        environ.pop(name, None)


def _stop_signals_end_a_starting_worker() -> None:
    """In a worker, just after the fork. Until granian's worker loop installs its own
    handlers (once the app is built), the main process's handlers, inherited through the
    fork, would swallow a SIGTERM: a worker stopped while still starting would serve on
    until killed at the end of the grace period. A starting worker has no request in
    flight, so the default action (exit) is right."""
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.SIG_DFL)


def provider_server(settings: Settings, listen: Listen) -> Server:
    """granian, WSGI, HTTP/1.1: ``workers`` processes of ``threads`` threads each."""
    server = settings.server
    return Server(
        # Not imported by name: build_worker_app is the loader (see serve() below).
        "oidc_link.server:build_worker_app",
        address=listen.host,
        port=listen.port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,
        websockets=False,
        workers=listen.workers,
        blocking_threads=listen.threads,
        # An idle keep-alive connection is closed once no request header has arrived for
        # this long. Set through the API: granian's command line caps it at 60 s, which is
        # not above a 60 s load-balancer idle timeout.
        http1_settings=HTTP1Settings(keep_alive=True, header_read_timeout=server.keepalive * 1000),
        log_enabled=True,
        log_level=LogLevels(settings.logs.level.lower()),
        log_dictconfig=GRANIAN_LOGGING,
        log_access=False,
        # SIGTERM: stop accepting, let in-flight requests finish, then kill what remains.
        workers_kill_timeout=server.graceful_timeout,
        respawn_failed_workers=True,
    )


def start_metrics(settings: Settings) -> MetricsServer | None:
    """The main process's one ``/metrics`` endpoint, adding up every worker's values."""
    if not settings.metrics.enabled:
        return None
    from oidc_link.metrics import serve_metrics, wipe_shared_values

    # prometheus-client asks for an empty directory per run (before the workers start).
    wipe_shared_values(settings)
    return serve_metrics(settings)


def run_production_server(settings: Settings, listen: Listen) -> int:
    """Serve until SIGTERM or SIGINT (``docker stop``, Kubernetes, Ctrl-C): the workers
    finish their in-flight requests (up to ``graceful_timeout``), then the process exits 0.
    SIGHUP replaces the workers (with the same settings: restart the process to read the
    configuration again)."""
    listen = claim_address(listen)
    # Only granian forks in this process (its workers, with multiprocessing's fork).
    os.register_at_fork(after_in_child=_stop_signals_end_a_starting_worker)
    settings, metrics_directory = with_metrics_directory(settings)
    metrics_server: list[MetricsServer] = []
    try:
        check_services(settings)
        server = provider_server(settings, listen)

        @server.on_startup
        def announce() -> None:
            # In the main process, once it listens and before the first worker starts.
            log.info(
                "oidc-link serving %s on http://%s:%d with %d worker(s) x %d thread(s)",
                settings.issuer,
                listen.host,
                listen.port,
                listen.workers,
                listen.threads,
            )
            started = start_metrics(settings)
            if started is not None:
                metrics_server.append(started)

        @server.on_shutdown
        def stop_metrics() -> None:
            for started in metrics_server:
                started.close()

        try:
            server.serve(target_loader=partial(build_worker_app, settings), wrap_loader=False)
        except SystemExit as stop:
            # granian ends with sys.exit(1) when a worker died instead of stopping.
            return stop.code if isinstance(stop.code, int) else 1
        return 0
    finally:
        if metrics_directory:
            shutil.rmtree(metrics_directory, ignore_errors=True)


def run_development_server(settings: Settings, listen: Listen) -> int:
    """``serve --dev``: one process, threads, restarted when a source file changes."""
    from werkzeug.serving import is_running_from_reloader, run_simple

    # The reloader's parent process only watches files and restarts its child, which
    # serves: the app (keys, Redis, sandbox, the outbox's threads) is built in the child alone.
    app = _development_app(settings) if is_running_from_reloader() else _reloader_parent_app
    log.info("oidc-link (development) serving %s", settings.issuer)
    run_simple(listen.host, listen.port, app, use_reloader=True, threaded=True)
    return 0


def _development_app(settings: Settings) -> Callable[..., Any]:
    """The app and, with ``[outbox] deliver``, the outbox's threads."""
    from oidc_link.services import build_services

    services = build_services(settings)
    return with_outbox_running(settings, services, create_app(settings, services))


def _reloader_parent_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    # Never called: werkzeug's reloader parent does not serve requests.
    start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
    return [b"not the serving process\n"]
