"""A loopback HTTP proxy in front of a live provider that misbehaves on cue: it can drop the
connection after the provider answered (the answer is lost on the way back), or answer in the
provider's place (a 503 from a load balancer, an HTML error page). Real sockets throughout.
"""

from __future__ import annotations

import http.client
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
# Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
# Written by the proxy's own answer, so not copied from the provider's.
_OWN_HEADERS = {"content-length", "content-type", "date", "server"}


@dataclass(frozen=True)
class Drop:
    """Forward the request, then close the client's connection without answering."""


@dataclass(frozen=True)
class Answer:
    """Answer in the provider's place; the request does not reach the provider."""

    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


Fault = Drop | Answer


@dataclass(frozen=True)
class Passage:
    """One request through the proxy: what it was and what became of it."""

    method: str
    path: str
    idempotency_key: str | None
    fault: Fault | None
    upstream_status: int | None


@dataclass
class FaultyProxy:
    url: str
    faults: deque[Fault]
    passages: list[Passage]
    _server: ThreadingHTTPServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def start_faulty_proxy(upstream_url: str) -> FaultyProxy:
    """Proxy to ``upstream_url``; each request takes the next fault queued in ``faults``
    (none left: it passes through untouched)."""
    upstream = urlsplit(upstream_url)
    faults: deque[Fault] = deque()
    passages: list[Passage] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: no request lines in the test output

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with lock:
                fault = faults.popleft() if faults else None
            key = self.headers.get("Idempotency-Key")
            if isinstance(fault, Answer):
                passages.append(Passage(self.command, self.path, key, fault, None))
                self._reply(fault.status, fault.body, fault.content_type, fault.headers)
                return
            connection = http.client.HTTPConnection(
                upstream.hostname or LOOPBACK, upstream.port, timeout=10
            )
            try:
                forwarded = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in _HOP_BY_HOP
                }
                connection.request(self.command, self.path, body=body, headers=forwarded)
                response = connection.getresponse()
                answer = response.read()
                passages.append(Passage(self.command, self.path, key, fault, response.status))
                if isinstance(fault, Drop):
                    # The provider acted and answered; the client never hears of it.
                    self.close_connection = True
                    return
                headers = {
                    name: value
                    for name, value in response.getheaders()
                    if name.lower() not in _HOP_BY_HOP | _OWN_HEADERS
                }
                self._reply(
                    response.status, answer, response.getheader("Content-Type", ""), headers
                )
            finally:
                connection.close()

        def _reply(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str]
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        do_GET = do_POST = do_DELETE = _handle  # noqa: N815 - http.server's naming

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    # A short poll interval: stop() waits for the serving loop to look up.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="faulty-proxy", daemon=True
    )
    thread.start()
    return FaultyProxy(f"http://{LOOPBACK}:{server.server_port}", faults, passages, server, thread)
