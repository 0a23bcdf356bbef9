"""``POST /token`` answered before Flask: the code exchange and the refresh grant, a sign-in's
last exchange and the one a relying party repeats all day, without Flask's request, response
and dispatch around a view that is already framework-free (``Provider.token``).

Only the plain request is answered here: ``POST /token``, no query string, a body of
``Content-Type: application/x-www-form-urlencoded`` exactly (what every relying party's
library sends) with a ``Content-Length`` of at most 64 KiB and no ``Transfer-Encoding``,
a ``Host`` that Flask routes, and the app as ``create_web_app`` made it (its request frame's
hooks only, no session, no debug mode, no signal receivers). Anything else, and any failure
before the provider is called, goes to Flask untouched, a body already read given back as a
fresh ``wsgi.input``.

What the request frame (web/request_frame.py) does around the view is done here with the
same functions in the same order: the HTTP metric's timer, the request id, the request log's
start (web/request_log.py ``RequestLog.start``: the id for every line, the lines held), then
the security headers (web/headers.py), the request line and the held lines, the metric, and
the teardown (``RequestLog.forget``). The body is parsed as web/fixed_limits.py parses it.
Once the provider has been called a code may be spent: its answer is sent whatever happens,
and an exception it raises gets Flask's own error handling (``_answer_raised``).
tests/test_token_fast_path.py compares both paths on many requests.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" codec error handler
from flask import Flask, Response
from flask.globals import _cv_app
from flask.sessions import SecureCookieSessionInterface
from flask.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    got_request_exception,
    request_finished,
    request_started,
    request_tearing_down,
)
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import get_host

from oidc_link.ids import new_id
from oidc_link.logs.held import write_held
from oidc_link.oauth.messages import ProtocolRequest, ProtocolResponse
from oidc_link.web.context import EXTENSION_NAME
from oidc_link.web.headers import add_answer_headers, is_https_issuer
from oidc_link.web.request_log import (
    PlainParts,
    RequestLog,
    _basic_user,
    write_request_line,
)
from oidc_link.web.request_metrics import TIMER_STARTED
from oidc_link.web.token_response import TOKEN_HEADER_PAIRS, token_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from oidc_link.services import Services

log = logging.getLogger(__name__)

TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret
URLENCODED = "application/x-www-form-urlencoded"
# A token request's body is a few hundred bytes; a larger one (up to the app's own limit,
# none by default) is left to Flask, which parses it the same way.
MAX_FAST_BODY = 64 * 1024
_MAX_LENGTH_DIGITS = len(str(MAX_FAST_BODY))
# Werkzeug's handler for bytes that do not decode: kept %-escaped, as its form parser keeps
# them (registered by werkzeug.urls).
_URL_QUOTE = "werkzeug.url_quote"
# Hosts (the Host header's value) Flask was shown to route, kept as the app keeps their
# server names (web/plain_flask.py): a Host header is the client's to choose, so the set is
# emptied when full rather than grown.
_KEPT_HOSTS = 64
# The request frame's hooks, the only ones the token endpoint may run for the answer to
# be made here (web/request_frame.py): (Flask's hook table, the function's name).
_FRAME_HOOKS = (
    ("before_request_funcs", "install_request_frame.<locals>.open_frame"),
    ("after_request_funcs", "install_request_frame.<locals>.close_frame"),
    ("teardown_request_funcs", "install_request_frame.<locals>.forget_request"),
)
_FRAME_MODULE = "oidc_link.web.request_frame"


def install_token_fast_path(app: Flask, view: Callable[[], Response]) -> None:
    """Put the token fast path right in front of Flask's own ``wsgi_app`` (inside a
    ProxyFix, so the request it sees is the one Flask would). Called as the protocol
    blueprint is registered; ``view`` is the token view the route must still lead to. An
    app whose WSGI stack has another shape keeps Flask's route alone."""
    stack = app.wsgi_app
    if isinstance(stack, ProxyFix):
        stack.app = TokenFastPath(stack.app, app, view)
    elif getattr(stack, "__self__", None) is app:
        app.wsgi_app = TokenFastPath(stack, app, view)  # type: ignore[method-assign]


class TokenFastPath:
    """The WSGI app in front of Flask's ``wsgi_app`` (``app``) that answers a plain token
    request itself."""

    def __init__(self, app: WSGIApplication, flask_app: Flask, view: Callable[[], Response]):
        self.app = app
        self._flask = flask_app
        self._view = view
        self._hosts: set[str] = set()
        # Filled by the first request that finds the app as create_web_app made it.
        self._ready = False
        self._route = TOKEN_PATH
        self._endpoint = ""
        self._parts: _AppParts | None = None
        # The app's limit on a body, read once as web/fixed_limits.py reads it.
        self._max_content_length = flask_app.config["MAX_CONTENT_LENGTH"]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != TOKEN_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or not self._takes(environ)
        ):
            return self.app(environ, start_response)
        try:
            body = _plain_body(environ)
        except Exception:
            # Nothing was taken from the stream, or what failed would fail in Flask too.
            log.debug("token request left to Flask", exc_info=True)
            return self.app(environ, start_response)
        if body is None:
            return self.app(environ, start_response)
        if len(body) > MAX_FAST_BODY:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        return self._answer(environ, start_response, body)

    def _takes(self, environ: WSGIEnvironment) -> bool:
        """Whether the request and the app are as the fast path needs them (before the body
        is read); anything unusual leaves the request to Flask."""
        if (
            environ.get("QUERY_STRING")
            or environ.get("CONTENT_TYPE") != URLENCODED
            or "HTTP_TRANSFER_ENCODING" in environ
            or "werkzeug.debug.preserve_context" in environ
        ):
            return False
        flask_app = self._flask
        config = flask_app.config
        if (
            config["DEBUG"]
            or config["SERVER_NAME"] is not None
            or config["TRUSTED_HOSTS"] is not None
            or config["SECRET_KEY"]
            or self._max_content_length is not None
            or _connected()
        ):
            return False
        if not self._ready and not self._get_ready():
            return False
        host = environ.get("HTTP_HOST")
        return host is not None and (host in self._hosts or self._routable(host, environ))

    def _get_ready(self) -> bool:
        """The app as create_web_app made it: the token route leads to the token view, and
        the only hooks it runs are the request frame's. Checked on every request until
        Flask has answered one (from then on Flask refuses new hooks and routes)."""
        flask_app = self._flask
        if (
            flask_app.url_map.host_matching
            or flask_app.subdomain_matching
            or flask_app.session_interface.__class__ is not SecureCookieSessionInterface
            or flask_app.teardown_appcontext_funcs
        ):
            return False
        try:
            rule, _ = flask_app.url_map.bind("localhost").match(
                TOKEN_PATH, "POST", return_rule=True
            )
        except Exception:
            return False
        endpoint = rule.endpoint
        blueprint = endpoint.rpartition(".")[0]
        if flask_app.view_functions.get(endpoint) is not self._view or any(
            flask_app.url_value_preprocessors.get(name) for name in (None, blueprint)
        ):
            return False
        for table, name in _FRAME_HOOKS:
            hooks = getattr(flask_app, table)
            frame = hooks.get(None, ())
            if (
                hooks.get(blueprint)
                or len(frame) != 1
                or frame[0].__module__ != _FRAME_MODULE
                or frame[0].__qualname__ != name
            ):
                return False
        self._route, self._endpoint = rule.rule, endpoint
        self._ready = flask_app._got_first_request
        return True

    def _routable(self, host: str, environ: WSGIEnvironment) -> bool:
        """Whether Flask finds a server name in ``host`` (web/plain_flask.py
        create_url_adapter: a name IDNA cannot encode is a 400 Bad Host there)."""
        try:
            self._flask.url_map.bind(get_host(environ).lower())
        except Exception:
            return False
        if len(self._hosts) >= _KEPT_HOSTS:
            self._hosts.clear()
        self._hosts.add(host)
        return True

    def _answer(
        self, environ: WSGIEnvironment, start_response: StartResponse, body: bytes
    ) -> Iterable[bytes]:
        found = self._flask.extensions[EXTENSION_NAME].services
        parts = self._parts
        if parts is None or parts.services is not found:
            parts = self._parts = _AppParts(found)
        metrics = parts.metrics
        # The request frame's opening (open_frame): the timer, the id, the log's start.
        frame: dict[str, Any] = {TIMER_STARTED: metrics.timer()}
        request_id = frame["request_id"] = new_id("req")
        RequestLog.start(frame, request_id)
        try:
            form = form_pairs(body)
            authorization = environ.get("HTTP_AUTHORIZATION")
            request = ProtocolRequest(
                method="POST",
                path=TOKEN_PATH,
                form=form,
                headers={"Authorization": authorization} if authorization is not None else {},
            )
        except Exception:
            RequestLog.forget(frame)
            log.debug("token request left to Flask", exc_info=True)
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        try:
            try:
                answer = found.provider.token(request)
            except Exception as error:
                environ["wsgi.input"] = io.BytesIO(body)  # the error's log line reads the form
                return self._answer_raised(environ, start_response, error, frame)
            sent = parts.issued(answer, request_id)
            if sent is None:
                response = token_response(answer, self._flask.response_class)
                add_answer_headers(response.headers, request_id, cacheable=False, https=parts.https)
                sent = response.get_wsgi_response(environ)
                parts.learn(answer, request_id, sent)
                status = response.status_code
            else:
                status = 200
            # The request frame's closing (close_frame): the request line, the metric.
            known = parts.known_clients
            write_request_line(
                request_id,
                lambda: configured_client(known, form, authorization),
                self._route,
                "POST",
                status,
                frame["request_log_started"],
                parts.plain_parts,
            )
            write_held()
            spent = metrics.timer() - frame[TIMER_STARTED]
            metrics.http_request(self._endpoint, "POST", status, spent)
            # As Werkzeug's Response.__call__: the status and headers, then the body.
            body_parts, status_line, headers = sent
            start_response(status_line, headers)
            return body_parts
        finally:
            RequestLog.forget(frame)  # teardown; nothing left once _answer_raised's ran

    def _answer_raised(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        error: Exception,
        frame: dict[str, Any],
    ) -> Iterable[bytes]:
        """What Flask answers when the token view raises ``error`` (its error handler's
        answer through the after-request hooks, then the teardown), in a request context
        holding this request's frame: its id, clocks and held lines. Called while
        ``error`` is being handled, as Flask's ``handle_user_exception`` expects."""
        flask_app = self._flask
        context = flask_app.request_context(environ)
        failure: BaseException | None = None
        try:
            try:
                context.push()
                values = vars(_cv_app.get().g)
                values.update(frame)
                frame.clear()  # the request context's teardown forgets them now
                response = flask_app.finalize_request(flask_app.handle_user_exception(error))
            except Exception as raised:
                failure = raised
                response = flask_app.handle_exception(raised)
            except BaseException:  # as Flask's wsgi_app: torn down with it, then raised
                failure = sys.exc_info()[1]
                raise
            return response(environ, start_response)  # type: ignore[no-any-return]
        finally:
            if failure is not None and flask_app.should_ignore_error(failure):
                failure = None
            context.pop(failure)  # type: ignore[arg-type]


def _connected() -> bool:
    """Whether a receiver is connected to a signal Flask sends per request (it sends them
    only to a connected one, web/plain_flask.py): such a request must be seen by Flask."""
    return bool(
        request_started.receivers
        or request_finished.receivers
        or request_tearing_down.receivers
        or got_request_exception.receivers
        or appcontext_pushed.receivers
        or appcontext_popped.receivers
        or appcontext_tearing_down.receivers
    )


def _plain_body(environ: WSGIEnvironment) -> bytes | None:
    """The body as Werkzeug's ``Request.stream`` gives it (no limit set), or None, nothing
    read, for a ``Content-Length`` that is not a few plain digits up to MAX_FAST_BODY. A body
    shorter than its length (a client gone) goes to Flask with the bytes that came."""
    length = environ.get("CONTENT_LENGTH")
    if (
        length is None
        or not 0 < len(length) <= _MAX_LENGTH_DIGITS
        or not (length.isdigit() and length.isascii())
        or int(length) > MAX_FAST_BODY
    ):
        return None
    stream = environ["wsgi.input"]
    if "wsgi.input_terminated" in environ:
        # The server ends the stream (granian): Werkzeug reads it whole, as here.
        body: bytes = stream.read()
        return body
    size = int(length)
    parts = []
    left = size
    while left > 0:
        part = stream.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    body = b"".join(parts)
    if left > 0:
        environ["wsgi.input"] = io.BytesIO(body)  # Flask says ClientDisconnected itself
        return None
    return body


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The form's pairs as the token view reads them (web/protocol.py ``_form_pairs``):
    parsed as web/fixed_limits.py parses a urlencoded body (a body not in UTF-8 is an empty
    form), then each name's values together, in the order the names first came, as a
    MultiDict holds them."""
    try:
        pairs = parsed_pairs(body.decode())
    except ValueError:
        return []
    if len({name for name, _ in pairs}) == len(pairs):
        return pairs
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return [(name, value) for name, values in grouped.items() for value in values]


def parsed_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")``, its loop
    written out: a name or value is given to ``unquote`` (the same call) only if it holds a
    ``%``, and a ``+`` is replaced only where there is one. parse_qsl's argument checks and
    coercions, and an ``unquote`` call per part, were most of its cost for a token request."""
    pairs = []
    for segment in text.split("&"):
        if not segment:
            continue
        name, _, value = segment.partition("=")  # no "=": a blank value (keep_blank_values)
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors=_URL_QUOTE)
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors=_URL_QUOTE)
        pairs.append((name, value))
    return pairs


def configured_client(
    known: frozenset[str], form: list[tuple[str, str]], authorization: str | None
) -> str | None:
    """The request line's client id, as web/request_log.py finds it for a token request
    (no query string): the form's first ``client_id``, then Basic auth's user, the first
    that is configured."""
    named = next((value for name, value in form if name == "client_id"), None)
    if named and named in known:
        return named
    if authorization:
        user = _basic_user(authorization)
        if user:
            named = unquote_plus(user)
            if named and named in known:
                return named
    return None


class _AppParts:
    """What the answer needs of the app's services, found once: the metrics, the clients the
    request line may name, whether the issuer is https; and a successful token answer's
    status line and headers as Werkzeug sent the first one, with a slot each for the
    request id and the body's length (every other header is the same for every answer)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.metrics = services.metrics
        self.known_clients = frozenset(client.client_id for client in services.settings.clients)
        self.plain_parts = PlainParts(self.known_clients)
        self.https = is_https_issuer(services.settings.issuer)
        self._issued: tuple[str, list[tuple[str, str]], int, int] | None = None

    def issued(
        self, answer: ProtocolResponse, request_id: str
    ) -> tuple[list[bytes], str, list[tuple[str, str]]] | None:
        """A successful answer's body, status line and headers, or None: not one, or none
        sent yet to learn them from."""
        issued = self._issued
        if (
            issued is None
            or answer.status != 200
            or answer.body.__class__ is not str
            or answer.headers != TOKEN_HEADER_PAIRS
        ):
            return None
        status_line, headers, id_at, length_at = issued
        data = answer.body.encode()  # type: ignore[union-attr]
        headers = headers.copy()
        headers[id_at] = ("Request-Id", request_id)
        headers[length_at] = ("Content-Length", str(len(data)))
        return [data], status_line, headers

    def learn(
        self,
        answer: ProtocolResponse,
        request_id: str,
        sent: tuple[Iterable[bytes], str, list[tuple[str, str]]],
    ) -> None:
        """Keep the shape of a successful answer as Werkzeug sent it (one body part, the
        request id and the length each once, with the values this answer has)."""
        body_parts, status_line, headers = sent
        if (
            self._issued is not None
            or answer.status != 200
            or answer.body.__class__ is not str
            or answer.headers != TOKEN_HEADER_PAIRS
            or body_parts.__class__ is not list
            or len(body_parts) != 1  # type: ignore[arg-type]
        ):
            return
        data = body_parts[0]  # type: ignore[index]
        names = [name for name, _ in headers]
        if names.count("Request-Id") != 1 or names.count("Content-Length") != 1:
            return
        id_at, length_at = names.index("Request-Id"), names.index("Content-Length")
        if (
            data != answer.body.encode()  # type: ignore[union-attr]
            or headers[id_at][1] != request_id
            or headers[length_at][1] != str(len(data))
        ):
            return
        self._issued = (status_line, list(headers), id_at, length_at)
