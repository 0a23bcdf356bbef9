"""One log line per request: request id, client, route, method, status and duration.

Never the raw path or its query string (a login_hint, an id_token_hint, a Login Link token), never
a header or a body: only the route's pattern and a client id that is configured. A successful
probe or document GET (discovery, JWKS, /healthz, /readyz) is left to the HTTP metric unless
``log_probe_requests = "line"``; any other answer to them is logged.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any
from urllib.parse import unquote_plus

from flask import Response
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request

from oidc_link.config import Settings
from oidc_link.logs import current_request_id
from oidc_link.logs.direct import Event, write_checked_line, write_line
from oidc_link.logs.held import hold_lines, take_event, write_held
from oidc_link.logs.mask import may_hold_secret
from oidc_link.web.health import LIVENESS_PATH, READINESS_PATH
from oidc_link.web.public_documents import DISCOVERY_PATH, JWKS_PATH

log = logging.getLogger("oidc_link.requests")

REQUEST_EVENT = "http.request"
REQUEST_MESSAGE = "%s %s %d in %s ms"
# What load balancers and relying parties' libraries fetch over and over: a line for each
# success would outnumber the sign-ins' own lines and cost more than their answers.
PROBE_ROUTES = frozenset({DISCOVERY_PATH, JWKS_PATH, LIVENESS_PATH, READINESS_PATH})
_PROBE_METHODS = frozenset({"GET", "HEAD"})
_FORM_TYPE = "application/x-www-form-urlencoded"
# Methods a line may name without the mask's check: nothing in them for it to find. A
# client may send any token as its method; any other is checked with the rest of the line.
_PLAIN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class PlainParts:
    """Which parts of an app's request lines the mask would leave as they are, each checked
    once: the configured client ids, and the routes as they are first seen (no more than
    the URL map has). A line whose route, method and client id are plain needs the mask's
    check only on its request id (the status and the duration are numbers)."""

    __slots__ = ("_clients", "_parts")

    def __init__(self, client_ids: Iterable[str]) -> None:
        self._clients = frozenset(c for c in client_ids if not may_hold_secret(c)) | {None}
        # (route, method, client id) → plain or not, for the standard methods and the
        # configured clients only: no more keys than the routes times 7 times the clients.
        self._parts: dict[tuple[str | None, str, str | None], bool] = {}

    def hold(self, request_id: str, client_id: str | None, route: str | None, method: str) -> bool:
        """True when no part of the request line holds a sign of a secret."""
        plain = self._parts.get((route, method, client_id))
        if plain is None:
            plain = self._check(route, method, client_id)
        return plain and not may_hold_secret(request_id)

    def _check(self, route: str | None, method: str, client_id: str | None) -> bool:
        """Whether the request line's unchanging parts are plain; remembered only for a
        standard method and a configured client (a client may send any token as its
        method; an event may name any client), so the keys stay as few as the routes."""
        if method not in _PLAIN_METHODS or client_id not in self._clients:
            return False
        plain = route is None or not may_hold_secret(route)
        self._parts[route, method, client_id] = plain
        return plain


class RequestLog:
    """The request line's three moments, called by the request frame (web/request_frame.py):
    ``start`` before any view, ``finish`` once the answer is made, ``forget`` at teardown.
    Each takes the request's ``g`` as its dict (one lookup, not one per attribute)."""

    __slots__ = ("_known_clients", "_plain_parts", "_probe_lines")

    def __init__(self, settings: Settings) -> None:
        self._probe_lines = settings.logs.probe_lines
        self._known_clients = frozenset(client.client_id for client in settings.clients)
        self._plain_parts = PlainParts(self._known_clients)

    @staticmethod
    def start(values: dict[str, Any], request_id: str) -> None:
        """After the request id is assigned: the clock, the id for every line, and the
        request's lines held to go out together with its own, in one write
        (logs/held.py)."""
        values["request_log_started"] = time.perf_counter()
        values["request_log_context"] = current_request_id.set(request_id)
        values["request_log_held"] = hold_lines()

    def finish(self, incoming: Request, values: dict[str, Any], response: Response) -> None:
        """The request's line, then its held lines, its own last, in one write."""
        rule = incoming.url_rule
        route = rule.rule if rule is not None else None
        status = response.status_code
        method = incoming.method
        if (
            not self._probe_lines
            and route in PROBE_ROUTES
            and is_successful_probe(route, method, status)
        ):
            write_held()
            return
        known_clients = self._known_clients
        write_request_line(
            values.get("request_id"),
            lambda: _client_id(known_clients, incoming, values.get("api_caller")),
            route,
            method,
            status,
            values.get("request_log_started"),
            self._plain_parts,
        )
        write_held()  # the request's lines, its own last, in one write

    @staticmethod
    def forget(values: dict[str, Any]) -> None:
        """Anything logged after the request line, or held when no request line was
        written (an error in another after-request step); the request id unset."""
        write_held(values.pop("request_log_held", None))
        token = values.pop("request_log_context", None)
        if token is not None:
            try:
                current_request_id.reset(token)
            except ValueError:  # torn down in another context than set: just forget it
                current_request_id.set(None)


def is_successful_probe(route: str | None, method: str, status: int) -> bool:
    """A GET or HEAD of a probe route answered 2xx or 304: with ``log_probe_requests =
    "counter"`` only the HTTP metric records it. An error there is always logged."""
    return (
        route in PROBE_ROUTES
        and method in _PROBE_METHODS
        and (200 <= status < 300 or status == 304)
    )


def write_request_line(
    request_id: str | None,
    client_id: Callable[[], str | None],
    route: str | None,
    method: str,
    status: int,
    started: float | None,
    plain_parts: PlainParts | None = None,
) -> None:
    """The request's line; ``started`` is its ``time.perf_counter()``. The hook above and the
    answer before Flask (fast_path.py) both write theirs here. With ``plain_parts``, a line
    they show to be plain skips the mask's check of each field (logs/direct.py
    ``write_checked_line``): the same line, for less. A step event the request logged
    (logs/direct.py ``write_event``) is written on this line: see ``_write_with_event``."""
    level = logging.ERROR if status >= 500 else logging.INFO
    if not log.isEnabledFor(level):
        # No line would be written (OIDC_LINK_LOG_LEVEL=WARNING): build none, and leave
        # the body and the Authorization header that name the client unparsed. An event
        # the request kept is written on its own (logs/held.py write_held).
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
    # In the order the line writes them (logs.REQUEST_FIELDS, then the event).
    fields = {
        "request_id": request_id,
        "client_id": None,
        "route": route,
        "method": method,
        "status": status,
        "duration_ms": duration_ms,
        "event": REQUEST_EVENT,
    }
    event = take_event()
    if event is not None:
        if isinstance(event, Event):
            _write_with_event(event, fields, client_id, level, plain_parts)
            return
        event.write_alone()  # kept by another writer than logs/direct.py: on its own
    fields["client_id"] = client = client_id()
    shown_route = route or "(no route)"
    if (
        plain_parts is not None
        and request_id is not None
        and plain_parts.hold(request_id, client, route, method)
        # REQUEST_MESSAGE's text, as an f-string: no tuple, no format string to parse.
        and write_checked_line(
            log, level, f"{method} {shown_route} {status:d} in {duration_ms} ms", fields
        )
    ):
        return
    # Masked like any other line; written without a LogRecord unless another handler
    # wants one (logs/direct.py).
    write_line(log, level, REQUEST_MESSAGE, (method, shown_route, status, duration_ms), fields)


def _write_with_event(
    event: Event,
    request: dict[str, Any],
    client_id: Callable[[], str | None],
    level: int,
    plain_parts: PlainParts | None,
) -> None:
    """One line for the request and its step event: the event's line (its logger, message,
    ``event`` name and fields, as it was) with the request's fields first, at the request's
    level if that is higher (a 500). The client is the event's (the request's is then not
    looked for), or the request's if the event names none. One line where there were two."""
    given = event.fields.get("client_id")
    fields = request | event.masked_fields  # the event's masked when it was logged
    if given is None:
        fields["client_id"] = client_id()
    level = max(level, event.level)
    request_id = fields["request_id"]
    if (
        plain_parts is not None
        and request_id is not None
        and plain_parts.hold(request_id, fields["client_id"], fields["route"], fields["method"])
        and write_checked_line(event.logger, level, event.masked_message, fields)
    ):
        return
    # Another handler wants a record, or a part of the request shows a sign of a secret:
    # the line from the event as logged, masked as a whole.
    raw = request | event.fields
    raw["client_id"] = fields["client_id"] if given is None else given
    write_line(event.logger, level, event.message, event.arguments, raw)


def _client_id(
    known_clients: frozenset[str], incoming: Request, api_caller: object | None
) -> str | None:
    if api_caller is not None:  # a /v1 request, its key already checked
        return api_caller.client.client_id  # type: ignore[attr-defined]
    return _first_known(known_clients, incoming)


def configured_client_id(settings: Settings, incoming: Request) -> str | None:
    """The configured client the request names, or None: an unknown value is whatever the
    sender typed (an email, a secret pasted in the wrong field) and stays out of the log."""
    return _first_known(frozenset(client.client_id for client in settings.clients), incoming)


def _first_known(known_clients: frozenset[str], incoming: Request) -> str | None:
    """The query's, the form's, then Basic auth's client id, the first that is configured.
    Each is read only if the request has one: a request without a query string naming a
    client, a form body or an Authorization header (discovery, JWKS, most pages) gets
    nothing parsed for its log line."""
    environ = incoming.environ
    query = environ.get("QUERY_STRING")
    # A key written with a %-escape decodes to client_id too: the query is parsed then.
    if query and ("client_id" in query or "%" in query):
        named = _named_client(incoming.args)
        if named and named in known_clients:
            return named
    content_type = environ.get("CONTENT_TYPE")
    # What Request.mimetype finds, without parsing the header's options (or, for the type
    # as browsers and most clients send it, anything).
    if content_type and (
        content_type == _FORM_TYPE or content_type.partition(";")[0].strip().lower() == _FORM_TYPE
    ):
        named = None
        # A body too large to parse raises here: the answer has already said so.
        with suppress(HTTPException):
            named = _named_client(incoming.form)
        if named and named in known_clients:
            return named
    return basic_client(environ.get("HTTP_AUTHORIZATION"), known_clients)


def basic_client(authorization: str | None, known_clients: frozenset[str]) -> str | None:
    """The configured client named by Basic credentials' user, if any."""
    if authorization:
        user = _basic_user(authorization)
        if user:
            # RFC 6749 §2.3.1: the client id is form-encoded before it goes into Basic auth.
            named = unquote_plus(user)
            if named and named in known_clients:
                return named
    return None


def _named_client(values: MultiDict[str, str]) -> str | None:
    """The first ``client_id`` of a query or form. Looked for before it is read: for a
    missing key, MultiDict.get builds and catches a BadRequestKeyError (an HTTPException)."""
    return values["client_id"] if "client_id" in values else None  # noqa: SIM401


def _basic_user(header: str) -> str | None:
    """The user name of Basic credentials (RFC 7617 §2), read as werkzeug's
    ``Authorization.from_header`` reads it, without building the object; None for another
    scheme or credentials that do not decode (werkzeug raised on non-ASCII ones: a 500)."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(" \t"), validate=True).decode()
    except ValueError:  # binascii.Error, a header not in ASCII, bytes not in UTF-8
        return None
    return decoded.partition(":")[0]
