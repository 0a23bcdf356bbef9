"""PlainFlask: Flask's request handling with the per-request work this app never needs
left out, every skip guarded so that a feature put to use later still works as in Flask.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from flask.ctx import AppContext, RequestContext, _sentinel
from flask.globals import _cv_app, _cv_request
from flask.sessions import SecureCookieSessionInterface
from flask.signals import (
    appcontext_popped,
    appcontext_pushed,
    appcontext_tearing_down,
    request_finished,
    request_started,
    request_tearing_down,
)
from werkzeug.routing import MapAdapter
from werkzeug.wsgi import get_host

from oidc_link.web.languages import LanguageEnvironment
from oidc_link.web.route_shortcut import CountedMap, RouteShortcut

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from flask.sessions import SessionMixin
    from flask.typing import ResponseReturnValue
    from flask.wrappers import Request

_Hook = Callable[..., Any]
# Hosts (by what get_host reads: scheme, Host header, server name and port) whose host and
# server name (lower case, IDNA-encoded) are kept: a Host header is the client's to choose,
# so the table is emptied when full rather than grown.
_KEPT_HOSTS = 64


@dataclass(frozen=True)
class _Hooks:
    """The hooks one endpoint runs, in the order Flask runs them (app first, then the
    blueprint and its parents; after-request and teardown in reverse)."""

    url_value_preprocessors: tuple[_Hook, ...]
    before: tuple[_Hook, ...]
    after: tuple[_Hook, ...]
    teardown: tuple[_Hook, ...]


class PlainFlask(Flask):
    """Flask, doing per request only what this app uses. Each skip, and why it is safe:

    - ``ensure_sync`` returns the function itself: Flask asks ``inspect`` whether each view
      and hook is a coroutine function (about 12 asks a request) to run it through asgiref.
      None is: no module of oidc_link defines one (tests/test_architecture.py).
    - Signals (request_started, request_finished, request_tearing_down and the app
      context's four) are sent only when a receiver is connected: blinker would call
      nobody, after a few calls of its own.
    - The session: with no ``secret_key`` and Flask's own session interface, Flask opens a
      NullSession and never saves it; it is made directly. Given a secret key or another
      interface, the session is opened and saved as in Flask.
    - The hooks of each endpoint (url_value_preprocessors, before_request, after_request,
      teardown_request) are collected once, after the first request: Flask refuses a new
      hook from then on (``setupmethod``), so the lists cannot change. Before that, they
      are collected on every request as Flask does.
    - A view's answer of exactly ``response_class`` is taken as it is, as Flask's
      ``make_response`` would, without its checks of every other shape; a ``str``, or a
      ``(str, status, headers)`` tuple, goes straight to ``response_class`` as Flask's
      would send it (web/answer_start.py then sets the common ones in one step).
    - The URL adapter: with no SERVER_NAME, TRUSTED_HOSTS, host or subdomain matching and
      no ``Connection: upgrade``, Werkzeug's ``bind_to_environ`` comes down to the host
      and its IDNA form (both kept for the last few (scheme, Host, server name, port)
      keys: all that ``get_host`` reads) and the WSGI strings of the path, script root and
      query: the adapter is made from those. Without a request or ``SERVER_NAME`` there
      is none, as in Flask.
    - Routing: a path of a plain route (static segments and default ``<name>`` arguments,
      nothing else that could match) is found by its segments, without Werkzeug's state
      machine (web/route_shortcut.py); any other goes to Werkzeug's ``match``.

    tests/test_plain_flask.py shows each feature still working when put to use.
    """

    # Templates' globals read through a view, not copied out of a ChainMap per render;
    # each page's template compiled in the request's language (web/languages.py).
    jinja_environment = LanguageEnvironment
    url_map_class = CountedMap

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hooks_by_endpoint: dict[str | None, _Hooks] = {}
        self._server_names: dict[
            tuple[str, str | None, str | None, str | None], tuple[str, str]
        ] = {}
        self.route_shortcut = RouteShortcut(self.url_map)  # type: ignore[arg-type]

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func

    def app_context(self) -> AppContext:
        return _PlainAppContext(self)

    def request_context(self, environ: WSGIEnvironment) -> RequestContext:
        return _PlainRequestContext(self, environ)

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        config = self.config
        if request is None and config["SERVER_NAME"] is None:
            return None  # Flask's answer for an app context without a server name
        if (
            request is None
            or request.trusted_hosts is not None
            or config["TRUSTED_HOSTS"] is not None
            or config["SERVER_NAME"] is not None
            or self.url_map.host_matching
            or self.subdomain_matching
        ):
            return super().create_url_adapter(request)
        environ = request.environ
        connection = environ.get("HTTP_CONNECTION")
        if connection is not None and "upgrade" in connection.lower():
            return super().create_url_adapter(request)  # perhaps a WebSocket: ws, wss
        scheme = environ["wsgi.url_scheme"]
        # All that get_host reads: the host and its server name found once per such key.
        key = (
            scheme,
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
        )
        found = self._server_names.get(key)
        if found is None:
            host = get_host(environ)
            # Map.bind's own lower case and IDNA; a BadHost raised as from Flask's.
            found = host, self.url_map.bind(host.lower()).server_name
            if len(self._server_names) >= _KEPT_HOSTS:
                self._server_names.clear()
            self._server_names[key] = found
        request.host, server_name = found  # type: ignore[misc]  # as Flask sets the host
        # The WSGI strings as Werkzeug's _wsgi_decoding_dance decodes them.
        script = environ.get("SCRIPT_NAME")
        path = environ.get("PATH_INFO")
        query = environ.get("QUERY_STRING")
        return MapAdapter(
            self.url_map,
            server_name,
            "/" if script is None else script.encode("latin1").decode(errors="replace"),
            self.url_map.default_subdomain or "",
            scheme,
            "/" if path is None else path.encode("latin1").decode(errors="replace"),
            environ["REQUEST_METHOD"],
            None if query is None else query.encode("latin1").decode(errors="replace"),
        )

    def full_dispatch_request(self) -> Response:
        self._got_first_request = True
        try:
            if request_started.receivers:
                request_started.send(self, _async_wrapper=self.ensure_sync)
            rv = self.preprocess_request()
            if rv is None:
                rv = self.dispatch_request()
        except Exception as e:
            rv = self.handle_user_exception(e)
        return self.finalize_request(rv)

    def finalize_request(self, rv: Any, from_error_handler: bool = False) -> Response:
        response = self.make_response(rv)
        try:
            response = self.process_response(response)
            if request_finished.receivers:
                request_finished.send(self, _async_wrapper=self.ensure_sync, response=response)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed with an error while handling an error")
        return response

    def preprocess_request(self) -> ResponseReturnValue | None:
        incoming = _cv_request.get().request
        hooks = self._hooks_of(incoming)
        for url_func in hooks.url_value_preprocessors:
            url_func(incoming.endpoint, incoming.view_args)
        for before_func in hooks.before:
            rv = before_func()
            if rv is not None:
                return rv  # type: ignore[no-any-return]
        return None

    def dispatch_request(self) -> ResponseReturnValue:
        incoming = _cv_request.get().request
        if incoming.routing_exception is not None:
            self.raise_routing_exception(incoming)
        rule = incoming.url_rule
        if incoming.method == "OPTIONS" and getattr(rule, "provide_automatic_options", False):
            return self.make_default_options_response()
        return self.view_functions[rule.endpoint](**incoming.view_args)  # type: ignore[union-attr,no-any-return]

    def make_response(self, rv: ResponseReturnValue) -> Response:
        kind = rv.__class__
        if kind is self.response_class:
            return rv  # type: ignore[return-value]
        if kind is str:
            return self.response_class(rv)
        if kind is tuple and len(rv) == 3 and rv[0].__class__ is str:  # type: ignore[arg-type]
            body, status, headers = rv  # type: ignore[misc]
            return self.response_class(body, status=status, headers=headers)
        return super().make_response(rv)

    def process_response(self, response: Response) -> Response:
        context = _cv_request.get()
        for func in context._after_request_functions:
            response = func(response)
        for func in self._hooks_of(context.request).after:
            response = func(response)
        if not self.session_interface.is_null_session(context._session):
            self.session_interface.save_session(self, context._session, response)  # type: ignore[arg-type]
        return response

    def do_teardown_request(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if exc is _sentinel:
            exc = _current_exception()
        context = _cv_request.get(None)
        hooks = self._hooks_of(context.request if context is not None else None)
        for func in hooks.teardown:
            func(exc)
        if request_tearing_down.receivers:
            request_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    def do_teardown_appcontext(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        if exc is _sentinel:
            exc = _current_exception()
        for func in reversed(self.teardown_appcontext_funcs):
            func(exc)
        if appcontext_tearing_down.receivers:
            appcontext_tearing_down.send(self, _async_wrapper=self.ensure_sync, exc=exc)

    def _hooks_of(self, incoming: Request | None) -> _Hooks:
        endpoint = incoming.endpoint if incoming is not None else None
        if self._got_first_request:
            hooks = self._hooks_by_endpoint.get(endpoint)
            if hooks is None:
                hooks = self._hooks_by_endpoint[endpoint] = self._collect_hooks(incoming)
            return hooks
        return self._collect_hooks(incoming)

    def _collect_hooks(self, incoming: Request | None) -> _Hooks:
        blueprints = incoming.blueprints if incoming is not None else []
        first_app = (None, *reversed(blueprints))
        app_last = (*blueprints, None)
        return _Hooks(
            url_value_preprocessors=tuple(
                chain.from_iterable(
                    self.url_value_preprocessors.get(name, ()) for name in first_app
                )
            ),
            before=tuple(
                chain.from_iterable(self.before_request_funcs.get(name, ()) for name in first_app)
            ),
            after=tuple(
                chain.from_iterable(
                    reversed(self.after_request_funcs.get(name, ())) for name in app_last
                )
            ),
            teardown=tuple(
                chain.from_iterable(
                    reversed(self.teardown_request_funcs.get(name, ())) for name in app_last
                )
            ),
        )


def _current_exception() -> BaseException | None:
    return sys.exc_info()[1]


class _PlainAppContext(AppContext):
    """Flask's app context, its signals sent only to a connected receiver."""

    def push(self) -> None:
        self._cv_tokens.append(_cv_app.set(self))
        if appcontext_pushed.receivers:
            appcontext_pushed.send(self.app, _async_wrapper=self.app.ensure_sync)

    def pop(self, exc: BaseException | None = _sentinel) -> None:  # type: ignore[assignment]
        try:
            if len(self._cv_tokens) == 1:
                if exc is _sentinel:
                    exc = _current_exception()
                self.app.do_teardown_appcontext(exc)
        finally:
            context = _cv_app.get()
            _cv_app.reset(self._cv_tokens.pop())
        if context is not self:
            raise AssertionError(f"Popped wrong app context. ({context!r} instead of {self!r})")
        if appcontext_popped.receivers:
            appcontext_popped.send(self.app, _async_wrapper=self.app.ensure_sync)


class _PlainRequestContext(RequestContext):
    """Flask's request context, its null session made directly when there can be no other,
    a plain route found without Werkzeug's matcher."""

    def push(self) -> None:
        app_context = _cv_app.get(None)
        if app_context is None or app_context.app is not self.app:
            app_context = self.app.app_context()
            app_context.push()
        else:
            app_context = None
        self._cv_tokens.append((_cv_request.set(self), app_context))
        if self._session is None:
            self._session = _open_session(self.app, self.request)
        if self.url_adapter is not None:
            self.match_request()

    def match_request(self) -> None:
        found = self.app.route_shortcut.match(self.url_adapter)  # type: ignore[attr-defined,arg-type]
        if found is None:
            super().match_request()
        else:
            self.request.url_rule, self.request.view_args = found  # type: ignore[assignment]


def _open_session(app: Flask, incoming: Request) -> SessionMixin:
    interface = app.session_interface
    if not app.secret_key and interface.__class__ is SecureCookieSessionInterface:
        # What its open_session gives without a key (None), made into make_null_session's.
        return interface.null_session_class()
    session = interface.open_session(app, incoming)
    return session if session is not None else interface.make_null_session(app)
