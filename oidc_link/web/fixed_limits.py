"""Flask's request and response classes with the app's body and cookie limits read once,
when the app is made (Flask's own look the app up through ``current_app`` on every read
of a limit, about ten times for each form POST); a urlencoded form parsed, and an answer's
headers finalized, without Werkzeug's general machinery around the same steps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flask import Request, Response
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import _get_server

from oidc_link.web.answer_start import answer_fields

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

URLENCODED = "application/x-www-form-urlencoded"
# Headers that make Werkzeug rewrite an answer's headers as it sends them.
_REWRITTEN = frozenset({"location", "content-location"})
# A Location that Werkzeug's iri_to_uri gives back unchanged (tests/test_request_classes.py
# checks it on many URLs): an absolute URL of a lower-case scheme and ASCII host (labels of
# 1 to 63 characters, as the IDNA codec takes them unchanged), a port of 1 to 4 digits
# without a leading zero, no user; or a path starting with one "/". Path, query and
# fragment only of characters its quote() leaves as they are in each part; a "?" or "#"
# with nothing after it (which urlunsplit drops) is not one.
_PATH = r"[A-Za-z0-9_.~%!$&'()*+,/:;=@-]"
_UNCHANGED_LOCATION = re.compile(
    r"(?:[a-z][a-z0-9+.-]*://[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})*(?::[1-9][0-9]{0,3})?"
    rf"(?:/{_PATH}*)?|/(?!/){_PATH}*)"
    r"(?:\?[A-Za-z0-9_.~%!$&'()*+,/:;=?@-]+)?"
    r"(?:#[A-Za-z0-9_.~%!$&'()*+,/:;=?@#-]+)?"
)


def request_class_for(config: Mapping[str, Any]) -> type[Request]:
    """Flask's Request, its limits from ``config`` as it is now; a limit set on one request
    (Flask 3.1's per-request override) still wins."""
    content_length = config["MAX_CONTENT_LENGTH"]
    form_memory_size = config["MAX_FORM_MEMORY_SIZE"]
    form_parts = config["MAX_FORM_PARTS"]

    class FixedLimitsRequest(Request):
        def __init__(
            self, environ: WSGIEnvironment, populate_request: bool = True, shallow: bool = False
        ) -> None:
            """Werkzeug 3.1's ``Request.__init__`` and its sans-IO parent's in one step: the
            same fields from the same environ keys, the path and root decoded as its
            ``_wsgi_decoding_dance`` decodes them (tests/test_request_init.py compares)."""
            get = environ.get
            self.method = get("REQUEST_METHOD", "GET").upper()
            self.scheme = get("wsgi.url_scheme", "http")
            self.server = _get_server(environ)
            root = (get("SCRIPT_NAME") or "").encode("latin1").decode(errors="replace")
            self.root_path = root.rstrip("/")
            path = (get("PATH_INFO") or "").encode("latin1").decode(errors="replace")
            self.path = "/" + path.lstrip("/")
            self.query_string = get("QUERY_STRING", "").encode("latin1")
            self.headers = EnvironHeaders(environ)
            self.remote_addr = get("REMOTE_ADDR")
            self.environ = environ
            self.shallow = shallow
            if populate_request and not shallow:
                environ["werkzeug.request"] = self

        @property
        def max_content_length(self) -> int | None:
            own = self._max_content_length
            return content_length if own is None else own

        @max_content_length.setter
        def max_content_length(self, value: int | None) -> None:
            self._max_content_length = value

        @property
        def max_form_memory_size(self) -> int | None:
            own = self._max_form_memory_size
            return form_memory_size if own is None else own

        @max_form_memory_size.setter
        def max_form_memory_size(self, value: int | None) -> None:
            self._max_form_memory_size = value

        @property
        def max_form_parts(self) -> int | None:
            own = self._max_form_parts
            return form_parts if own is None else own

        @max_form_parts.setter
        def max_form_parts(self, value: int | None) -> None:
            self._max_form_parts = value

        def close(self) -> None:
            """Werkzeug's, which closes the uploaded files: only when there are any."""
            if self.__dict__.get("files"):
                super().close()

        def _load_form_data(self) -> None:
            """A body sent as exactly ``application/x-www-form-urlencoded`` (every form of
            ours, every token request) parsed as Werkzeug 3.1's FormDataParser parses it,
            without making the parser, parsing the Content-Type or looking up the app:
            read from Werkzeug's own ``stream`` (the same 413 over MAX_CONTENT_LENGTH, the
            same bounds and disconnect errors), decoded, split by ``parse_qsl``; a body
            that is not UTF-8 gives an empty form, as Werkzeug's silent parser does.
            Anything else (multipart, a charset parameter, a body already read with
            ``get_data``, debug mode) goes to Flask's."""
            values = self.__dict__
            if "form" in values:
                return
            if (
                self.environ.get("CONTENT_TYPE") != URLENCODED
                or "_cached_data" in values
                or config["DEBUG"]
            ):
                super()._load_form_data()
                return
            stream = self.stream
            storage = self.parameter_storage_class
            try:
                form = storage(
                    parse_qsl(
                        stream.read().decode(),
                        keep_blank_values=True,
                        errors="werkzeug.url_quote",
                    )
                )
            except ValueError:
                form = storage()
            values["stream"], values["form"], values["files"] = stream, form, storage()

    return FixedLimitsRequest


def response_class_for(config: Mapping[str, Any]) -> type[Response]:
    """Flask's Response, warning about cookies over ``MAX_COOKIE_SIZE`` as it is now."""

    class FixedLimitsResponse(Response):
        max_cookie_size = config["MAX_COOKIE_SIZE"]

        def __init__(
            self,
            response: Any = None,
            status: Any = None,
            headers: Any = None,
            mimetype: str | None = None,
            content_type: str | None = None,
            direct_passthrough: bool = False,
        ) -> None:
            """Werkzeug's answer; one of a ``str`` body, a known status and plain headers
            (every page, redirect and JSON answer of ours) set in one step
            (web/answer_start.py), as Werkzeug would set it."""
            fields = (
                answer_fields(
                    response,
                    status,
                    headers,
                    mimetype,
                    content_type,
                    self.default_status,
                    self.default_mimetype,
                )
                if self.automatically_set_content_length
                else None
            )
            if fields is None:
                super().__init__(
                    response, status, headers, mimetype, content_type, direct_passthrough
                )
                return
            self._status, self._status_code, self.headers, data = fields
            self.direct_passthrough = direct_passthrough
            self._on_close: list[Callable[[], Any]] = []
            self.response = [data]

        def get_wsgi_response(
            self, environ: WSGIEnvironment
        ) -> tuple[Iterable[bytes], str, list[tuple[str, str]]]:
            """Werkzeug's answer, its headers listed once: Werkzeug copies them into a new
            Headers (checking each value again) to fix up a Location or Content-Location,
            a 1xx, 204 or 304, or a missing Content-Length. With none of the first three,
            the headers go out as they are, a Content-Length appended as Werkzeug would.
            A single Location that ``iri_to_uri`` would give back as it is (every redirect
            of ours: the flow's pages, the relying party's redirect_uri) needs no fixing."""
            status = self.status_code
            if status < 200 or status in (204, 304) or self.autocorrect_location_header:
                return super().get_wsgi_response(environ)
            headers = self.headers.to_wsgi_list()
            has_length = has_location = False
            for name, value in headers:
                lowered = name.lower()
                if lowered in _REWRITTEN:
                    if (
                        lowered != "location"
                        or has_location
                        or _UNCHANGED_LOCATION.fullmatch(value) is None
                    ):
                        return super().get_wsgi_response(environ)
                    has_location = True
                elif lowered == "content-length":
                    has_length = True
            if not has_length and self.automatically_set_content_length and self.is_sequence:
                length = sum(len(part) for part in self.iter_encoded())
                headers.append(("Content-Length", str(length)))
            return self._body(environ), self.status, headers

        def _body(self, environ: WSGIEnvironment) -> Iterable[bytes]:
            """The body as set (a list of bytes) rather than Werkzeug's ClosingIterator
            over a generator encoding it: the same bytes, and nothing for ``close`` to do
            (a list has no ``close``, and no callback was registered)."""
            body = self.response
            if body.__class__ is not list or self._on_close:
                return self.get_app_iter(environ)
            for part in body:  # a loop, not any() over a generator: one part, mostly
                if part.__class__ is not bytes:
                    return self.get_app_iter(environ)
            return [] if environ["REQUEST_METHOD"] == "HEAD" else body

    return FixedLimitsResponse
