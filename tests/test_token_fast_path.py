"""``POST /token`` answered before Flask (web/token_fast_path.py) against Flask's own route, on
many requests, good and bad: the same status, headers (but the Request-Id's value), body,
request log line and HTTP metric, whichever answered; and every request outside the fast
path's narrow case still answered by Flask itself."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder, run_wsgi_app

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.errors import StoreUnavailableError
from oidc_link.logs import configure_logging
from oidc_link.services import build_services
from oidc_link.web.context import EXTENSION_NAME
from oidc_link.web.token_fast_path import TokenFastPath
from oidc_link.web.token_request import configured_client, form_pairs, parsed_pairs
from tests.conftest import (
    ISSUER,
    JENNY,
    POST_SECRET,
    SHOP_CALLBACK,
    SHOP_SECRET,
    provider_config,
)
from tests.relying_party import Browser, RelyingParty, query_of
from tests.sandbox_console import announced_code

URLENCODED = "application/x-www-form-urlencoded"
HISTOGRAM = "oidc_link_http_request_duration_seconds_count"
BLOG_CALLBACK = "https://blog.example.test/auth"
# Fields of a log line that differ between any two requests.
FRESH_FIELDS = {"request_id", "duration_ms", "timestamp", "time", "ts"}
DURATION = re.compile(r"in [0-9.]+ ms")


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


SHOP_BASIC = basic("shop", SHOP_SECRET)


class Answer:
    """A WSGI answer (status line, headers in order, body) and the log lines it wrote."""

    def __init__(self, app: Any, environ: dict[str, Any], log: io.StringIO) -> None:
        start = len(log.getvalue())
        body, self.status, headers = run_wsgi_app(app, environ, buffered=True)
        self.headers: Headers = headers
        self.body = b"".join(body)
        if hasattr(body, "close"):
            body.close()
        self.lines = [json.loads(line) for line in log.getvalue()[start:].splitlines()]

    def shape(self) -> tuple[str, list[tuple[str, str]], bytes, list[dict[str, Any]]]:
        """What both paths must give alike: every header but the Request-Id's value, each
        line but its fresh fields (the request id must be the answer's own)."""
        request_id = self.headers["Request-Id"]
        assert request_id.startswith("req_")
        lines = []
        for line in self.lines:
            assert line.get("request_id") in (request_id, None)
            kept = {k: v for k, v in line.items() if k not in FRESH_FIELDS}
            if isinstance(kept.get("message"), str):
                message = DURATION.sub("in (time) ms", kept["message"])
                kept["message"] = message.replace(request_id, "(this request)")
            if isinstance(kept.get("exception"), str):
                # The frames above the provider are each path's own; the error is the same.
                kept["exception"] = kept["exception"].rstrip().rsplit("\n", 1)[-1]
            lines.append(kept)
        headers = [(k, "(fresh)" if k == "Request-Id" else v) for k, v in self.headers]
        return self.status, headers, self.body, lines


class Paths:
    """One app, reached through its whole WSGI stack (the fast path in it), or through the
    same stack with the fast path taken out (as before it existed), counting what reaches
    Flask."""

    def __init__(self, app: Flask, log: io.StringIO) -> None:
        self.app = app
        self.log = log
        self.holder, self.fast_path = token_fast_path_of(app)
        self.flask = self.fast_path.app
        self.reached_flask = 0

        def counting(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            self.reached_flask += 1
            return self.flask(environ, start_response)  # type: ignore[no-any-return]

        self.fast_path.app = counting

    def through_stack(self, environ: dict[str, Any]) -> tuple[Answer, bool]:
        """The answer, and whether the fast path gave it (Flask never saw the request)."""
        before = self.reached_flask
        answer = Answer(self.app.wsgi_app, environ, self.log)
        return answer, self.reached_flask == before

    def through_flask(self, environ: dict[str, Any]) -> Answer:
        self._hold(self.flask)
        try:
            return Answer(self.app.wsgi_app, environ, self.log)
        finally:
            self._hold(self.fast_path)

    def _hold(self, layer: Any) -> None:
        if self.holder is None:
            self.app.wsgi_app = layer  # type: ignore[method-assign]
        else:
            self.holder.app = layer

    def counted(self, status: int) -> float:
        registry: CollectorRegistry = self.app.extensions[EXTENSION_NAME].services.metrics.registry
        labels = {"endpoint": "protocol.token", "method": "POST", "status": str(status)}
        return registry.get_sample_value(HISTOGRAM, labels) or 0.0


def token_fast_path_of(app: Flask) -> tuple[Any, TokenFastPath]:
    """The fast path in the app's WSGI stack, and the layer in front of it (None: the app)."""
    holder: Any = None
    layer: Any = app.wsgi_app
    while not isinstance(layer, TokenFastPath):
        holder, layer = layer, layer.app
    return holder, layer


def environ_for(
    body: bytes | str = b"",
    *,
    method: str = "POST",
    path: str = "/token",
    content_type: str | None = URLENCODED,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Callable[[], dict[str, Any]]:
    """A fresh WSGI environ for each call (a body can be read once)."""
    data = body.encode() if isinstance(body, str) else body

    def build() -> dict[str, Any]:
        builder = EnvironBuilder(
            path=path,
            method=method,
            base_url=ISSUER,
            headers=headers or {},
            data=data,
            content_type=content_type,
        )
        environ = builder.get_environ()
        if content_type is None:
            environ.pop("CONTENT_TYPE", None)
        environ.update(extra)
        return {k: v for k, v in environ.items() if v is not None}

    return build


@pytest.fixture
def log() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    return stream


@pytest.fixture
def paths(app: Flask, log: io.StringIO) -> Paths:
    return Paths(app, log)


def same_answer(paths: Paths, build: Callable[[], dict[str, Any]], *, fast: bool) -> Answer:
    """The request through the stack and through Flask alone: the same answer, line and
    metric; answered before Flask when ``fast``."""
    answer, was_fast = paths.through_stack(build())
    assert was_fast is fast
    status = int(answer.status.split()[0])
    counted = paths.counted(status)
    expected = paths.through_flask(build())
    assert answer.shape() == expected.shape()
    assert paths.counted(status) == counted + 1
    return answer


# --- Requests the provider refuses without spending anything: compared byte for byte. ---

REFUSED: dict[str, tuple[str | bytes, dict[str, str]]] = {
    "empty body": (b"", {"Authorization": SHOP_BASIC}),
    "missing grant_type": ("code=abc&redirect_uri=x", {"Authorization": SHOP_BASIC}),
    "empty grant_type": ("grant_type=&code=abc", {"Authorization": SHOP_BASIC}),
    "unsupported grant": (
        "grant_type=password&username=a&password=b",
        {"Authorization": SHOP_BASIC},
    ),
    "client_credentials": ("grant_type=client_credentials", {"Authorization": SHOP_BASIC}),
    "duplicate parameter": (
        "grant_type=authorization_code&code=a&code=b",
        {"Authorization": SHOP_BASIC},
    ),
    "duplicate grant_type": (
        "grant_type=authorization_code&code=a&grant_type=refresh_token",
        {"Authorization": SHOP_BASIC},
    ),
    "unknown code, basic": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": SHOP_BASIC},
    ),
    "wrong secret": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": basic("shop", "wrong")},
    ),
    "unknown client": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": basic("nobody", "x")},
    ),
    "no client authentication": ("grant_type=authorization_code&code=nope", {}),
    "post auth, unknown code": (
        f"grant_type=authorization_code&code=nope&client_id=blog&client_secret={POST_SECRET}",
        {},
    ),
    "post auth, wrong secret": (
        "grant_type=authorization_code&code=nope&client_id=blog&client_secret=wrong",
        {},
    ),
    "post auth for a basic client": (
        f"grant_type=authorization_code&code=nope&client_id=shop&client_secret={SHOP_SECRET}",
        {},
    ),
    "basic for a post client": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": basic("blog", POST_SECRET)},
    ),
    "two authentication methods": (
        f"grant_type=authorization_code&code=nope&client_secret={SHOP_SECRET}",
        {"Authorization": SHOP_BASIC},
    ),
    "body client_id against basic": (
        "grant_type=authorization_code&code=nope&client_id=blog",
        {"Authorization": SHOP_BASIC},
    ),
    "public client, unknown code": (
        "grant_type=authorization_code&code=nope&client_id=spa&code_verifier=" + "v" * 43,
        {},
    ),
    "unknown refresh token": (
        "grant_type=refresh_token&refresh_token=nope",
        {"Authorization": SHOP_BASIC},
    ),
    "missing refresh token": ("grant_type=refresh_token", {"Authorization": SHOP_BASIC}),
    "missing code": ("grant_type=authorization_code", {"Authorization": SHOP_BASIC}),
    "bearer authorization": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": "Bearer abc"},
    ),
    "basic not base64": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": "Basic !!!"},
    ),
    "basic not utf-8": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
    ),
    "basic percent-encoded id": (
        "grant_type=authorization_code&code=nope",
        {"Authorization": basic("sh%6Fp", SHOP_SECRET)},
    ),
    "body not utf-8": (b"grant_type=authorization_code&code=\xff", {"Authorization": SHOP_BASIC}),
    "percent escapes not utf-8": (
        "grant_type=authorization_code&code=%ff%fe",
        {"Authorization": SHOP_BASIC},
    ),
    "plus and escapes": (
        "grant_type=authorization%5Fcode&code=a+b%20c&redirect_uri=%zz",
        {"Authorization": SHOP_BASIC},
    ),
    "semicolons and blanks": (
        "grant_type=authorization_code;code=a&&=&x&code_verifier=",
        {"Authorization": SHOP_BASIC},
    ),
    "a secret in a parameter name": (
        f"grant_type=authorization_code&code=nope&{SHOP_SECRET}=1",
        {"Authorization": SHOP_BASIC},
    ),
    "unicode values": ("grant_type=authorization_code&code=日本%F0%9F%98%80", {}),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_refused_token_request_gets_flasks_answer_line_and_metric(
    paths: Paths, case: str
) -> None:
    body, headers = REFUSED[case]

    answer = same_answer(paths, environ_for(body, headers=headers), fast=True)

    # Credentials not in UTF-8 included: invalid_client (oauth/request_shape.py), no 500.
    assert answer.status.startswith(("400", "401"))
    assert answer.headers["Cache-Control"] == "no-store"
    assert [line["route"] for line in answer.lines if line.get("event") == "http.request"] == [
        "/token"
    ]


def test_a_large_body_within_the_fast_paths_limit_is_answered_alike(paths: Paths) -> None:
    body = "grant_type=authorization_code&code=nope&pad=" + "x" * 60_000
    same_answer(paths, environ_for(body, headers={"Authorization": SHOP_BASIC}), fast=True)


# --- Requests outside the narrow case: Flask answers them, through the stack too. ---

OUTSIDE: dict[str, Callable[[], dict[str, Any]]] = {
    "GET": environ_for(method="GET", content_type=None),
    "HEAD": environ_for(method="HEAD", content_type=None),
    "PUT": environ_for("grant_type=refresh_token", method="PUT"),
    "OPTIONS": environ_for(method="OPTIONS", content_type=None),
    "a trailing slash": environ_for("grant_type=refresh_token", path="/token/"),
    "a query string": environ_for(
        "grant_type=refresh_token", headers={"Authorization": SHOP_BASIC}, QUERY_STRING="a=1"
    ),
    "a query naming the client": environ_for(
        "grant_type=refresh_token&refresh_token=x", QUERY_STRING="client_id=shop"
    ),
    "JSON": environ_for('{"grant_type": "refresh_token"}', content_type="application/json"),
    "no content type": environ_for("grant_type=refresh_token", content_type=None),
    "text/plain": environ_for("grant_type=refresh_token", content_type="text/plain"),
    "a charset parameter": environ_for(
        "grant_type=refresh_token&refresh_token=x",
        content_type=URLENCODED + "; charset=utf-8",
        headers={"Authorization": SHOP_BASIC},
    ),
    "a latin-1 charset": environ_for(
        b"grant_type=refresh_token&refresh_token=\xe9",
        content_type=URLENCODED + "; charset=latin-1",
        headers={"Authorization": SHOP_BASIC},
    ),
    "upper case type": environ_for(
        "grant_type=refresh_token", content_type="Application/X-WWW-Form-Urlencoded"
    ),
    "multipart": environ_for(
        b'--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\n'
        b"refresh_token\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
        headers={"Authorization": SHOP_BASIC},
    ),
    "a length with spaces": environ_for(
        "grant_type=refresh_token", CONTENT_LENGTH=" 24", headers={"Authorization": SHOP_BASIC}
    ),
    "a negative length": environ_for("grant_type=refresh_token", CONTENT_LENGTH="-1"),
    "a length not a number": environ_for("grant_type=refresh_token", CONTENT_LENGTH="x"),
    "no length": environ_for("grant_type=refresh_token", CONTENT_LENGTH=None),
    "an empty length": environ_for("grant_type=refresh_token", CONTENT_LENGTH=""),
    "a body over the fast path's limit": environ_for(
        "grant_type=refresh_token&pad=" + "x" * 70_000, headers={"Authorization": SHOP_BASIC}
    ),
    "a body shorter than its length": environ_for(
        "grant_type=refresh_token", CONTENT_LENGTH="80", headers={"Authorization": SHOP_BASIC}
    ),
    "chunked": environ_for(
        "grant_type=refresh_token&refresh_token=x",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH=None,
        **{"wsgi.input_terminated": True},
    ),
    "a host IDNA refuses": environ_for(
        "grant_type=refresh_token&refresh_token=x",
        HTTP_HOST="a" * 64 + ".example.test",
        headers={"Authorization": SHOP_BASIC},
    ),
    "no host": environ_for("grant_type=refresh_token", HTTP_HOST=None),
}


@pytest.mark.parametrize("case", OUTSIDE, ids=list(OUTSIDE))
def test_a_request_outside_the_narrow_case_is_left_to_flask(paths: Paths, case: str) -> None:
    answer, was_fast = paths.through_stack(OUTSIDE[case]())
    expected = paths.through_flask(OUTSIDE[case]())

    assert not was_fast
    assert answer.shape() == expected.shape()


def test_a_server_terminated_stream_is_read_whole_as_werkzeug_reads_it(paths: Paths) -> None:
    """granian sets wsgi.input_terminated: the body is read to its end, the length aside."""
    build = environ_for(
        "grant_type=refresh_token&refresh_token=nope",
        headers={"Authorization": SHOP_BASIC},
        **{"wsgi.input_terminated": True},
    )
    same_answer(paths, build, fast=True)


def test_flask_is_used_while_the_app_is_not_as_create_web_app_made_it(
    paths: Paths, app: Flask
) -> None:
    build = environ_for("grant_type=refresh_token", headers={"Authorization": SHOP_BASIC})
    assert paths.through_stack(build())[1]
    seen: list[str] = []

    @app.before_request
    def note() -> None:
        seen.append("seen")

    assert not paths.through_stack(build())[1]
    assert seen == ["seen"]
    app.before_request_funcs[None].remove(note)
    app.config["DEBUG"] = True
    assert not paths.through_stack(build())[1]
    app.config["DEBUG"] = False
    assert paths.through_stack(build())[1]


# --- Grants that succeed or spend something: each path given its own code or token. ---


class Codes:
    """Authorization codes for the shop, from /authorize on a signed-in browser (SSO)."""

    def __init__(self, app: Flask, console: list[str]) -> None:
        self.browser = Browser(app, ISSUER)
        self.shop = RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)
        request = self.shop.authorization_request(scope="openid email offline_access")
        self.browser.start(request.url)
        self.browser.submit("/email", email=JENNY)
        self.browser.submit("/code", code=announced_code(console))

    def code(self, scope: str = "openid email offline_access") -> tuple[str, str]:
        """A fresh code and its PKCE verifier."""
        verifier = secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": "shop",
                "redirect_uri": SHOP_CALLBACK,
                "scope": scope,
                "state": "s",
                "nonce": "n",
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
        )
        answer = self.browser.get("/authorize?" + query)
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return query_of(answer.headers["Location"])["code"], verifier


@pytest.fixture
def codes(app: Flask, console: list[str]) -> Codes:
    return Codes(app, console)


def exchange_form(code: str, verifier: str, **changed: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SHOP_CALLBACK,
        "code_verifier": verifier,
    }
    form.update(changed)
    return {k: v for k, v in form.items() if v is not None}


def same_issued(fast: Answer, flask: Answer) -> None:
    """Two successful token answers: the same headers (but the id and the length), the
    same members, the same lines but for the tokens' own values."""
    assert fast.status == flask.status == "200 OK"
    for answer in (fast, flask):
        assert answer.headers["Content-Length"] == str(len(answer.body))
    fresh = {"Request-Id", "Content-Length"}
    assert [(k, v) for k, v in fast.headers if k not in fresh] == [
        (k, v) for k, v in flask.headers if k not in fresh
    ]
    assert [k for k, _ in fast.headers] == [k for k, _ in flask.headers]
    ours, theirs = json.loads(fast.body), json.loads(flask.body)
    assert list(ours) == list(theirs)
    for name in ("token_type", "expires_in", "scope"):
        assert ours[name] == theirs[name]
    assert [sorted(line) for line in fast.lines] == [sorted(line) for line in flask.lines]
    for mine, other in zip(fast.lines, flask.lines, strict=True):
        for name in ("event", "route", "method", "status", "client_id", "grant_type", "message"):
            if name == "message":
                continue  # holds the duration
            assert mine.get(name) == other.get(name), name


def both(paths: Paths, fast_form: dict[str, str], flask_form: dict[str, str], **options: Any):
    fast, was_fast = paths.through_stack(environ_for(urlencode(fast_form), **options)())
    assert was_fast
    return fast, paths.through_flask(environ_for(urlencode(flask_form), **options)())


def test_a_code_exchange_is_answered_as_flask_answers_it(paths: Paths, codes: Codes) -> None:
    before = paths.counted(200)
    fast, flask = both(
        paths,
        exchange_form(*codes.code()),
        exchange_form(*codes.code()),
        headers={"Authorization": SHOP_BASIC},
    )
    same_issued(fast, flask)
    assert paths.counted(200) == before + 2
    requests = [line for line in fast.lines if line.get("event") == "tokens.issued"]
    assert requests and requests[0]["route"] == "/token"


def test_a_refresh_grant_is_answered_as_flask_answers_it(paths: Paths, codes: Codes) -> None:
    tokens = []
    for _ in range(2):
        code, verifier = codes.code()
        answer, _ = paths.through_stack(
            environ_for(
                urlencode(exchange_form(code, verifier)), headers={"Authorization": SHOP_BASIC}
            )()
        )
        tokens.append(json.loads(answer.body)["refresh_token"])
    fast, flask = both(
        paths,
        {"grant_type": "refresh_token", "refresh_token": tokens[0]},
        {"grant_type": "refresh_token", "refresh_token": tokens[1]},
        headers={"Authorization": SHOP_BASIC},
    )
    same_issued(fast, flask)
    # Each rotated token presented again: answered alike.
    for token in tokens:
        build = environ_for(
            urlencode({"grant_type": "refresh_token", "refresh_token": token}),
            headers={"Authorization": SHOP_BASIC},
        )
        answer, was_fast = paths.through_stack(build())
        again = paths.through_flask(build())
        assert was_fast
        if answer.status == "200 OK":
            same_issued(answer, again)
        else:
            assert answer.shape() == again.shape()


SPENDING: dict[str, dict[str, str | None]] = {
    "wrong verifier": {"code_verifier": "w" * 43},
    "no verifier": {"code_verifier": None},
    "wrong redirect_uri": {"redirect_uri": "https://shop.example.test/other"},
    "no redirect_uri": {"redirect_uri": None},
    "a scope sent along": {"scope": "openid"},
}


@pytest.mark.parametrize("case", SPENDING, ids=list(SPENDING))
def test_a_refused_redemption_is_answered_as_flask_answers_it(
    paths: Paths, codes: Codes, case: str
) -> None:
    fast, flask = both(
        paths,
        exchange_form(*codes.code(), **SPENDING[case]),  # type: ignore[arg-type]
        exchange_form(*codes.code(), **SPENDING[case]),  # type: ignore[arg-type]
        headers={"Authorization": SHOP_BASIC},
    )
    if fast.status.startswith("200"):
        same_issued(fast, flask)
    else:
        assert fast.shape() == flask.shape()


def test_a_replayed_code_is_refused_as_flask_refuses_it(paths: Paths, codes: Codes) -> None:
    code, verifier = codes.code()
    build = environ_for(
        urlencode(exchange_form(code, verifier)), headers={"Authorization": SHOP_BASIC}
    )
    first, was_fast = paths.through_stack(build())
    assert was_fast
    assert first.status == "200 OK"

    replayed = same_answer(paths, build, fast=True)

    assert replayed.status.startswith("400")
    assert json.loads(replayed.body)["error"] == "invalid_grant"


def test_post_authentication_for_a_post_client_is_answered_alike(
    paths: Paths, app: Flask, console: list[str]
) -> None:
    """The blog authenticates in the body (client_secret_post): the line names it."""
    blog = RelyingParty(app, ISSUER, "blog", BLOG_CALLBACK, POST_SECRET, "client_secret_post")
    browser = Browser(app, ISSUER)
    forms = []
    for _ in range(2):
        request = blog.authorization_request(scope="openid email")
        answer = browser.start(request.url)
        if answer.status_code == 200:
            browser.submit("/email", email=JENNY)
            answer = browser.submit("/code", code=announced_code(console))
        code = query_of(answer.headers["Location"])["code"]
        forms.append(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": BLOG_CALLBACK,
                "code_verifier": request.code_verifier,
                "client_id": "blog",
                "client_secret": POST_SECRET,
            }
        )
    fast, flask = both(paths, forms[0], forms[1])
    same_issued(fast, flask)
    assert [line["client_id"] for line in fast.lines if line.get("route")] == ["blog"]


# --- The provider raising: Flask's error handling, whichever path called it. ---


@pytest.mark.parametrize(
    "error",
    [lambda: StoreUnavailableError("unreachable"), lambda: RuntimeError("a bug")],
    ids=["redis down", "a bug"],
)
def test_an_error_raised_by_the_provider_is_answered_by_flasks_handler(
    paths: Paths, app: Flask, monkeypatch: pytest.MonkeyPatch, error: Callable[[], Exception]
) -> None:
    provider = app.extensions[EXTENSION_NAME].services.provider

    def failing(request: object) -> None:
        raise error()

    monkeypatch.setattr(provider, "token", failing)
    build = environ_for(
        "grant_type=refresh_token&refresh_token=x&client_id=shop",
        headers={"Authorization": SHOP_BASIC},
    )
    answer = same_answer(paths, build, fast=True)

    assert answer.status.startswith(("503", "500"))
    assert any(line.get("route") == "/token" for line in answer.lines)


# --- The shortcuts against what they replace. ---


def _bodies() -> Iterator[bytes]:
    yield from (b"", b"&", b"=", b"a", b"a=", b"=a", b"a=1&a=2&b=3&a=4", b"a=1;b=2")
    yield from (b"%", b"%2", b"%zz=1", b"a=%ff", b"\xff=1", b"a+b=c+d", b"a=%2B%20")
    yield from (b"b=1&a=2&b=3", b"x=" + "日本".encode(), b"a&&b&c=&=d")
    rng = secrets.SystemRandom()
    alphabet = [b"a", b"b", b"=", b"&", b";", b"%", b"2", b"F", b"+", b"\xc3\xa9", b"\xff"]
    alphabet += [b"%41", b"%e9", b"%C3%A9", b"%2B", b"%26", b"%3D", b" ", b"\x00"]
    for _ in range(1000):
        yield b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 16)))


def test_the_form_pairs_are_the_token_views(app: Flask) -> None:
    """What the token view reads from Werkzeug's form (web/fixed_limits.py's parse)."""
    from oidc_link.web.protocol import _form_pairs

    for body in _bodies():
        environ = EnvironBuilder(
            path="/token", method="POST", data=body, content_type=URLENCODED
        ).get_environ()
        with app.request_context(environ):
            from flask import request

            assert form_pairs(body) == _form_pairs(request.form), body


def test_the_pairs_are_parse_qsl_s() -> None:
    """parse_qsl as web/fixed_limits.py calls it, on text (the body once decoded)."""
    texts = [body.decode("utf-8", "replace") for body in _bodies()]
    texts += ["a=%C3%A9&b=%E6%97%A5", "%e9=%FF%fe", "a=%", "a=%%41", "日本=%41+b", "a=b=c"]
    for text in texts:
        assert parsed_pairs(text) == parse_qsl(
            text, keep_blank_values=True, errors="werkzeug.url_quote"
        ), text


def test_the_line_s_client_is_request_log_s(settings: Settings, app: Flask) -> None:
    from oidc_link.web.request_log import configured_client_id

    known = frozenset(client.client_id for client in settings.clients)
    authorizations = [
        None,
        "",
        SHOP_BASIC,
        basic("blog", "x"),
        basic("nobody", "x"),
        basic("sh%6Fp", "x"),
        basic("sh+op", "x"),
        "Basic !!",
        "Bearer shop",
        "basic " + base64.b64encode(b"spa:").decode(),
    ]
    for body in [b"", b"client_id=blog", b"client_id=&client_id=shop", b"client_id=nobody"]:
        for authorization in authorizations:
            headers = {"Authorization": authorization} if authorization is not None else {}
            environ = EnvironBuilder(
                path="/token", method="POST", data=body, content_type=URLENCODED, headers=headers
            ).get_environ()
            expected = configured_client_id(settings, app.request_class(environ))
            assert configured_client(known, form_pairs(body), authorization) == expected


def test_an_app_with_proxy_hops_gets_the_fast_path_behind_its_proxy_fix(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str], log: io.StringIO
) -> None:
    config = provider_config() | {"proxy_hops": 1}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    app = create_app(settings, services)
    paths = Paths(app, log)
    build = environ_for(
        "grant_type=refresh_token&refresh_token=x",
        headers={"Authorization": SHOP_BASIC, "X-Forwarded-Host": "a" * 64 + ".test"},
    )

    answer, was_fast = paths.through_stack(build())
    assert not was_fast  # the forwarded host is the one Flask routes: a 400 there
    assert answer.shape() == paths.through_flask(build()).shape()
    same_answer(
        paths,
        environ_for("grant_type=refresh_token&refresh_token=x", headers={"X-Forwarded-Host": "b"}),
        fast=True,
    )
