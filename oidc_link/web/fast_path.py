"""The fast path: discovery and the JWKS answered before Flask, a WSGI layer around the app.

A plain GET or HEAD of either document is answered here with what the Flask view and hooks
would give (status, headers, body; its HTTP metric, and its request log line with
``log_probe_requests = "line"``) at a fraction of the CPU. Anything else (another path or
method, a conditional request, a request with a body or credentials) and any failure here
go on to Flask untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from werkzeug.routing import Map
from werkzeug.wrappers import Request

from oidc_link.config import Settings
from oidc_link.ids import new_id
from oidc_link.logs import current_request_id
from oidc_link.metrics import Metrics
from oidc_link.web.headers import add_security_headers, is_https_issuer
from oidc_link.web.public_documents import (
    CONDITIONAL_REQUEST_HEADERS,
    DISCOVERY_PATH,
    JWKS_PATH,
    PublicDocument,
    PublicDocuments,
)
from oidc_link.web.request_log import (
    configured_client_id,
    is_successful_probe,
    write_request_line,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

# Request headers that only Flask reads for the log line's client id (a form body, Basic
# auth), under the app's size limits: a request carrying one goes to Flask. The query
# string is read here, as request_log.py reads it.
_PARSED_BY_FLASK = ("CONTENT_TYPE", "HTTP_AUTHORIZATION")


@dataclass(frozen=True)
class _Route:
    """A document's path, the Flask rule and endpoint that serve it, and its source."""

    rule: str
    endpoint: str
    document: Callable[[], PublicDocument]


@dataclass(frozen=True)
class _Answer:
    """One version of a document as sent: the body, and its headers with a slot for the
    request's id (every other header is the same for every request)."""

    body: bytes
    status: str
    status_code: int
    headers: tuple[tuple[str, str], ...]
    request_id_at: int

    @classmethod
    def of(cls, document: PublicDocument, https: bool) -> _Answer:
        # Built as the view builds its answer, then given the headers the app's after-request
        # hook adds (web/__init__.py add_headers: not a page, not under /static/).
        response = document.response()
        add_security_headers(response.headers, "", page=False, cacheable=False, https=https)
        headers = tuple(response.headers.to_wsgi_list())
        names = [name for name, _ in headers]
        return cls(
            document.body,
            response.status,
            response.status_code,
            headers,
            names.index("Request-Id"),
        )

    def headers_with(self, request_id: str) -> list[tuple[str, str]]:
        headers = list(self.headers)
        headers[self.request_id_at] = ("Request-Id", request_id)
        return headers


class FastPath:
    """The WSGI app in front of ``app`` (the Flask app's own ``wsgi_app``, or what wraps it)."""

    def __init__(
        self,
        app: WSGIApplication,
        documents: PublicDocuments,
        url_map: Map,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.app = app
        self._settings = settings
        self._https = is_https_issuer(settings.issuer)
        self._metrics = metrics
        self._probe_lines = settings.logs.probe_lines
        # The rule and endpoint the request log and the metrics name, as Flask routes them.
        adapter = url_map.bind("localhost")
        self._routes: dict[str, _Route] = {}
        for path, document in ((DISCOVERY_PATH, documents.discovery), (JWKS_PATH, documents.jwks)):
            rule, _ = adapter.match(path, "GET", return_rule=True)
            self._routes[path] = _Route(rule.rule, rule.endpoint, document)
        # The last answer of each path, kept while its document's body stays the same object.
        self._answers: dict[str, _Answer] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        route = self._routes.get(path)
        method = environ.get("REQUEST_METHOD")
        if (
            route is None
            or method not in ("GET", "HEAD")
            or not CONDITIONAL_REQUEST_HEADERS.isdisjoint(environ)
            or any(environ.get(name) for name in _PARSED_BY_FLASK)
        ):
            return self.app(environ, start_response)
        timer_started = self._metrics.timer()
        started = time.perf_counter()
        request_id = new_id("req")
        # As while Flask answers: a line logged meanwhile (a key refresh) carries the id.
        context = current_request_id.set(request_id)
        try:
            answer = self._answer(path, route)
        except Exception:
            current_request_id.reset(context)
            # Keys not loadable (Redis down at start-up...): Flask's error handling answers.
            log.debug("%s left to Flask", route.rule, exc_info=True)
            return self.app(environ, start_response)
        try:
            start_response(answer.status, answer.headers_with(request_id))
            status = answer.status_code
            if self._probe_lines or not is_successful_probe(route.rule, method, status):
                write_request_line(
                    request_id,
                    lambda: self._client_id(environ),
                    route.rule,
                    method,
                    status,
                    started,
                )
            self._metrics.http_request(
                route.endpoint, method, status, self._metrics.timer() - timer_started
            )
        finally:
            current_request_id.reset(context)
        # HEAD: the headers of a GET, Content-Length included, and no body (RFC 9110 §9.3.2).
        return [answer.body] if method == "GET" else []

    def _answer(self, path: str, route: _Route) -> _Answer:
        # The document is looked up on every request (the keys may have rotated); the
        # answer is built again only when the document is a new one.
        document = route.document()
        answer = self._answers.get(path)
        if answer is None or answer.body is not document.body:
            answer = _Answer.of(document, self._https)
            self._answers[path] = answer
        return answer

    def _client_id(self, environ: WSGIEnvironment) -> str | None:
        if not environ.get("QUERY_STRING"):
            return None  # nothing else can name one here (_PARSED_BY_FLASK)
        return configured_client_id(self._settings, Request(environ))
