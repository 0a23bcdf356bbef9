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
the teardown (``RequestLog.forget``). The body is read and parsed as Werkzeug and
web/fixed_limits.py do (web/token_request.py).
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
from oidc_link.oauth.messages import ProtocolRequest
from oidc_link.web.context import EXTENSION_NAME
from oidc_link.web.headers import add_answer_headers, is_https_issuer
from oidc_link.web.request_log import PlainParts, RequestLog, write_request_line
from oidc_link.web.request_metrics import TIMER_STARTED
from oidc_link.web.token_request import MAX_FAST_BODY, configured_client, form_pairs, plain_body
from oidc_link.web.token_response import TokenAnswers, token_response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from oidc_link.services import Services

log = logging.getLogger(__name__)

TOKEN_PATH = "/token"  # noqa: S105 - a path, not a secret
URLENCODED = "application/x-www-form-urlencoded"
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
            body = plain_body(environ)
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
            sent = parts.answers.issued(answer, request_id)
            if sent is None:
                response = token_response(answer, self._flask.response_class)
                add_answer_headers(response.headers, request_id, cacheable=False, https=parts.https)
                sent = response.get_wsgi_response(environ)
                parts.answers.learn(answer, request_id, sent)
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


class _AppParts:
    """What the answer needs of the app's services, found once: the metrics, the clients the
    request line may name, whether the issuer is https, and the successful answers' shape."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.metrics = services.metrics
        self.known_clients = frozenset(client.client_id for client in services.settings.clients)
        self.plain_parts = PlainParts(self.known_clients)
        self.https = is_https_issuer(services.settings.issuer)
        self.answers = TokenAnswers()
