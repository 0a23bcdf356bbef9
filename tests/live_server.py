"""The real provider served over real HTTP on loopback, and a relying party's landing page.

Outside client libraries (Authlib's requests client, Node's openid-client, a browser) talk to
the provider through sockets, so it runs with the system clock: they check ``iat`` and ``exp``
against real time. Everything else is the test configuration of tests/conftest.py, with the
issuer set to the server's own loopback URL and extra clients registered on top.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from oidc_link import create_app
from oidc_link.clock import SystemClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.services import build_services
from tests.conftest import SHOP_SECRET, provider_config

LOOPBACK = "127.0.0.1"


@dataclass
class LiveServer:
    """A provider answering on ``url``; ``console`` collects what the sandbox announces."""

    url: str
    settings: Settings
    console: list[str]
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def start_live_server(
    redis_client: redis.Redis,
    extra_clients: Iterable[Mapping[str, Any]] = (),
    limits: Mapping[str, int] | None = None,
) -> LiveServer:
    """Serve the provider in a daemon thread on a free loopback port.

    The socket is bound first so that the port is known before the issuer goes into the
    settings; the app is attached once it exists. ``limits`` is the ``[limits]`` table.
    """
    server = make_server(LOOPBACK, 0, _not_ready, threaded=True)
    try:
        url = f"http://{LOOPBACK}:{server.server_port}"
        config = provider_config()
        config["issuer"] = url
        config["clients"] = [*config["clients"], *extra_clients]  # type: ignore[misc]
        if limits is not None:
            config["limits"] = dict(limits)
        settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
        console: list[str] = []
        services = build_services(
            settings, clock=SystemClock(), redis_client=redis_client, announce=console.append
        )
        server.app = create_app(settings, services)
    except BaseException:
        server.server_close()
        raise
    thread = threading.Thread(target=server.serve_forever, name="live-provider", daemon=True)
    thread.start()
    return LiveServer(url, settings, console, server, thread)


@dataclass(frozen=True)
class Arrival:
    """One request that reached the relying party: how, where, and what it carried."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]


@dataclass
class RelyingPartyServer:
    """A relying party's pages on loopback that accept GET and POST and remember each arrival.

    It stands for the RP's redirect URI (including a form_post callback, which a browser
    posts to from the provider's origin) and its post-logout landing page.
    """

    url: str
    arrivals: list[Arrival]
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _UnloggedRequests(WSGIRequestHandler):
    """No access log: the RP's callback URLs carry authorization codes."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


def start_relying_party_server() -> RelyingPartyServer:
    arrivals: list[Arrival] = []

    @Request.application
    def record(request: Request) -> Response:
        arrivals.append(
            Arrival(
                method=request.method,
                path=request.path,
                query=dict(request.args.items()),
                form=dict(request.form.items()),
            )
        )
        return Response(
            f"<!doctype html><title>Relying party</title><h1>Received {request.method}</h1>",
            content_type="text/html; charset=utf-8",
        )

    server = make_server(LOOPBACK, 0, record, threaded=True, request_handler=_UnloggedRequests)
    thread = threading.Thread(target=server.serve_forever, name="live-rp", daemon=True)
    thread.start()
    return RelyingPartyServer(f"http://{LOOPBACK}:{server.server_port}", arrivals, server, thread)


def _not_ready(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]
