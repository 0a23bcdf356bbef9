"""A fake Link network over real HTTP on 127.0.0.1, speaking both live dialects.

The same users answer in the "loginwithlink" dialect (``/api/...``) and Stripe's consumer
sessions (``/v1/consumers/sessions/...``). Tests read the codes it "texts", expire them, and
queue faults (5xx, malformed JSON, connection resets, 429s, odd answers) for the next requests.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from oidc_link.config import LiveLinkSettings

PUBLISHABLE_KEY = "pk_test_fake_link_0123456789"
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class FakeUser:
    email: str
    phone: str
    name: str | None = None
    city: str | None = None


# Jenny's address is stored in mixed case, as a Link account may be: clients must lower-case
# what Link answers.
USERS = (
    FakeUser("Jenny@Example.com", "+14155550123", "Jenny Rosen", "San Francisco"),
    FakeUser("sam@example.com", "+447700900123"),
)


def redact_phone(phone: str) -> str:
    """Country prefix and last two digits, as in the loginwithlink docs: ``+3*********90``."""
    return phone[:2] + "*" * (len(phone) - 4) + phone[-2:]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string, which may hold an email
    at: float  # time.monotonic()
    client_port: int  # the same port twice means the connection was reused
    sent_cookie: bool  # whether the request carried a Cookie header


@dataclass
class _Session:
    email: str  # lower-cased, the key of the users table
    code: str | None = None
    expired: bool = False
    wrong_attempts: int = 0
    verified: bool = False


@dataclass(frozen=True)
class _Fault:
    kind: str  # "status", "malformed", "reset", "answer"
    status: int = 200
    body: Any = None


@dataclass
class _Answer:
    status: int
    body: Any
    raw: bytes | None = None


@dataclass
class FakeLinkServer:
    users: tuple[FakeUser, ...] = USERS
    publishable_key: str = PUBLISHABLE_KEY
    # loginwithlink: the field that carries the code (LiveLinkSettings.code_field).
    code_field: str = "code"
    # Seconds to wait before answering each request.
    latency: float = 0.0
    # 0 picks a free port; start() remembers it, so stop() and start() again keep the URL.
    port: int = 0
    _sessions: dict[str, _Session] = field(default_factory=dict)
    _issued_secrets: list[str] = field(default_factory=list)
    _codes: dict[str, str] = field(default_factory=dict)
    _faults: deque[_Fault] = field(default_factory=deque)
    _requests: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _http: _HTTPServer | None = None

    # Running.

    def start(self) -> FakeLinkServer:
        http = _HTTPServer(("127.0.0.1", self.port), _Handler)
        http.fake = self
        self.port = http.server_address[1]
        self._http = http
        threading.Thread(target=http.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> FakeLinkServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self.port, "the fake Link server has not started"
        return f"http://127.0.0.1:{self.port}"

    def settings_for(self, dialect: str, **overrides: Any) -> LiveLinkSettings:
        """Live settings pointing at this server, with short timeouts for tests."""
        values: dict[str, Any] = {
            "base_url": self.url,
            "publishable_key": self.publishable_key,
            "dialect": dialect,
            "connect_timeout": 1.0,
            "read_timeout": 2.0,
            "max_retries": 2,
            "code_field": self.code_field,
        }
        values.update(overrides)
        return LiveLinkSettings(**values)

    # What tests read.

    def last_code(self, email: str) -> str:
        with self._lock:
            return self._codes[email.strip().lower()]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def session_secrets(self) -> list[str]:
        """Every consumer-session client secret handed out, ended sessions' too (log tests
        search for them)."""
        with self._lock:
            return list(self._issued_secrets)

    def count(self, path: str) -> int:
        """How many requests went to ``path``."""
        return sum(1 for request in self.requests if request.path == path)

    # Switches.

    def expire_codes(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.expired = True

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        self._queue(count, _Fault("status", status, {"error": {"message": "unavailable"}}))

    def malformed_next(self, count: int = 1) -> None:
        self._queue(count, _Fault("malformed"))

    def reset_next(self, count: int = 1) -> None:
        """Close the connection without answering."""
        self._queue(count, _Fault("reset"))

    def rate_limit_next(self, count: int = 1) -> None:
        body = {"error": {"type": "rate_limit_error", "code": "rate_limit", "message": "slow"}}
        self._queue(count, _Fault("status", 429, body))

    def answer_next(self, body: Any, status: int = 200, count: int = 1) -> None:
        """Answer the next requests with ``body`` as JSON, whatever they asked."""
        self._queue(count, _Fault("answer", status, body))

    def _queue(self, count: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    # Serving (called from the handler threads).

    def _arrived(
        self, method: str, path: str, client_port: int, sent_cookie: bool
    ) -> _Fault | None:
        with self._lock:
            self._requests.append(
                RecordedRequest(method, path, time.monotonic(), client_port, sent_cookie)
            )
            return self._faults.popleft() if self._faults else None

    def _route(
        self, method: str, path: str, query: dict[str, str], body: dict[str, str], auth: str
    ) -> _Answer:
        with self._lock:
            if path == "/api/lookup-email" and method == "GET":
                return self._lwl_lookup(query)
            if path == "/api/start_verification" and method == "POST":
                return self._lwl_start(body)
            if path == "/api/authenticate" and method == "POST":
                return self._lwl_authenticate(body)
            if path.startswith("/v1/consumers/sessions/") and method == "POST":
                if auth != f"Bearer {self.publishable_key}":
                    return _stripe_error(401, "invalid_api_key", "authentication_error")
                if not body.get("request_surface"):
                    return _stripe_error(400, "parameter_missing")
                operation = path.removeprefix("/v1/consumers/sessions/")
                handlers = {
                    "lookup": self._stripe_lookup,
                    "start_verification": self._stripe_start,
                    "confirm_verification": self._stripe_confirm,
                    "log_out": self._stripe_log_out,
                }
                if operation in handlers:
                    return handlers[operation](body)
            return _Answer(404, {"error": {"message": "no such endpoint"}})

    def _user(self, email: str) -> FakeUser | None:
        wanted = email.strip().lower()
        return next((user for user in self.users if user.email.lower() == wanted), None)

    def _new_session(self, user: FakeUser) -> str:
        secret = "cs_fake_" + secrets.token_urlsafe(18)
        self._sessions[secret] = _Session(email=user.email.lower())
        self._issued_secrets.append(secret)
        return secret

    def _send_code(self, session: _Session) -> None:
        session.code = f"{secrets.randbelow(1_000_000):06d}"
        session.expired = False
        session.wrong_attempts = 0
        self._codes[session.email] = session.code

    def _check_code(self, secret: str, code: str) -> str | None:
        """None when ``code`` is right; otherwise "expired", "too_many" or "invalid"."""
        session = self._sessions[secret]
        if session.code is None or session.expired:
            return "expired"
        if not secrets.compare_digest(code, session.code):
            session.wrong_attempts += 1
            if session.wrong_attempts >= MAX_ATTEMPTS:
                del self._sessions[secret]
                return "too_many"
            return "invalid"
        session.code = None
        session.verified = True
        return None

    # The loginwithlink dialect.

    def _lwl_lookup(self, query: dict[str, str]) -> _Answer:
        if query.get("STRIPE_PUBLIC_KEY") != self.publishable_key:
            return _Answer(401, {"result": "error", "errorMessage": "Invalid STRIPE_PUBLIC_KEY"})
        email = query.get("email", "")
        submitted = {"email": email, "STRIPE_PUBLIC_KEY": self.publishable_key[:12] + "redacted"}
        user = self._user(email)
        if user is None:
            return _Answer(
                200,
                {"result": "success", "parametersSubmitted": submitted, "userExistsOnLink": False},
            )
        return _Answer(
            200,
            {
                "result": "success",
                "parametersSubmitted": submitted,
                "userExistsOnLink": True,
                "client_secret": self._new_session(user),
                "redacted_phone_number": redact_phone(user.phone),
            },
        )

    def _lwl_session(self, body: dict[str, str]) -> _Session | None:
        session = self._sessions.get(body.get("client_secret", ""))
        if session is None or session.email != body.get("email", "").strip().lower():
            return None
        return session

    def _lwl_start(self, body: dict[str, str]) -> _Answer:
        session = self._lwl_session(body)
        if session is None:
            return _Answer(400, {"result": "error", "errorMessage": "Session expired or unknown"})
        self._send_code(session)
        user = self._user(session.email)
        assert user is not None
        return _Answer(
            200,
            {
                "result": "success",
                "message": "SMS sent",
                "redacted_phone_number": redact_phone(user.phone),
            },
        )

    def _lwl_authenticate(self, body: dict[str, str]) -> _Answer:
        def failed(message: str) -> _Answer:
            return _Answer(200, {"authenticationSuccessful": False, "errorMessage": message})

        session = self._lwl_session(body)
        if session is None:
            return failed("Session expired; please start again")
        secret = body["client_secret"]
        problem = self._check_code(secret, body.get(self.code_field, ""))
        if problem == "expired":
            return failed("Verification code has expired")
        if problem == "too_many":
            return failed("Too many attempts")
        if problem == "invalid":
            return failed("Incorrect code")
        del self._sessions[secret]
        user = self._user(session.email)
        assert user is not None
        answer: dict[str, Any] = {"email": user.email}
        if user.name:
            answer["fullName"] = user.name
        if user.city:
            answer["city"] = user.city
        return _Answer(200, {"authenticationSuccessful": True, "user": answer})

    # Stripe's consumer sessions.

    def _consumer_session(self, secret: str, state: str | None = None) -> dict[str, Any]:
        session = self._sessions[secret]
        user = self._user(session.email)
        assert user is not None
        return {
            "client_secret": secret,
            "email_address": user.email,
            "redacted_phone_number": redact_phone(user.phone),
            "verification_sessions": [{"type": "SMS", "state": state}] if state else [],
        }

    def _stripe_lookup(self, body: dict[str, str]) -> _Answer:
        user = self._user(body.get("email_address", ""))
        if user is None:
            return _Answer(
                200,
                {"exists": False, "consumer_session": None, "error_message": "No such consumer"},
            )
        secret = self._new_session(user)
        return _Answer(200, {"exists": True, "consumer_session": self._consumer_session(secret)})

    def _stripe_secret(self, body: dict[str, str]) -> str | None:
        secret = body.get("credentials[consumer_session_client_secret]", "")
        return secret if secret in self._sessions else None

    def _stripe_start(self, body: dict[str, str]) -> _Answer:
        if body.get("type") != "SMS" or not body.get("locale"):
            return _stripe_error(400, "parameter_missing")
        secret = self._stripe_secret(body)
        if secret is None:
            return _stripe_error(400, "consumer_session_expired")
        session = self._sessions.pop(secret)
        # Stripe may rotate the secret on any answer; this fake always does here, so a client
        # that keeps the old one fails.
        secret = "cs_fake_" + secrets.token_urlsafe(18)
        self._sessions[secret] = session
        self._issued_secrets.append(secret)
        self._send_code(session)
        return _Answer(200, {"consumer_session": self._consumer_session(secret, "STARTED")})

    def _stripe_confirm(self, body: dict[str, str]) -> _Answer:
        if body.get("type") != "SMS":
            return _stripe_error(400, "parameter_missing")
        secret = self._stripe_secret(body)
        if secret is None:
            return _stripe_error(400, "consumer_session_expired")
        problem = self._check_code(secret, body.get("code", ""))
        if problem == "expired":
            return _stripe_error(400, "consumer_verification_expired")
        if problem == "too_many":
            return _stripe_error(429, "consumer_verification_max_attempts_exceeded")
        if problem == "invalid":
            return _stripe_error(400, "consumer_verification_code_invalid")
        return _Answer(200, {"consumer_session": self._consumer_session(secret, "VERIFIED")})

    def _stripe_log_out(self, body: dict[str, str]) -> _Answer:
        secret = self._stripe_secret(body)
        if secret is None:
            return _stripe_error(400, "consumer_session_expired")
        answer = self._consumer_session(secret)
        del self._sessions[secret]
        return _Answer(200, {"consumer_session": answer})


def _stripe_error(status: int, code: str, kind: str = "invalid_request_error") -> _Answer:
    return _Answer(status, {"error": {"type": kind, "code": code, "message": code}})


class _HTTPServer(ThreadingHTTPServer):
    fake: FakeLinkServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that gave up (a timeout test) leaves a broken pipe behind."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so tests can see connections reused
    timeout = 10  # an idle kept-alive connection ends eventually
    # Headers and body go out in two writes; without this, Nagle and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output stays readable."""

    def _serve(self) -> None:
        assert isinstance(self.server, _HTTPServer)
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        fault = fake._arrived(self.command, path, self.client_address[1], "Cookie" in self.headers)
        if fake.latency:
            time.sleep(fake.latency)
        if fault is None:
            answer = fake._route(
                self.command,
                path,
                _flat(parse_qs(query)),
                _body(raw, self.headers.get("Content-Type", "")),
                self.headers.get("Authorization", ""),
            )
        elif fault.kind == "reset":
            self.close_connection = True
            return
        elif fault.kind == "malformed":
            answer = _Answer(200, None, raw=b'{"userExistsOnLink": tru')
        else:
            answer = _Answer(fault.status, fault.body)
        payload = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # Like many web APIs, it sets a cookie; a shared client must not send it back.
        self.send_header("Set-Cookie", f"link_session={secrets.token_hex(8)}; Path=/")
        self.end_headers()
        self.wfile.write(payload)


def _flat(values: dict[str, list[str]]) -> dict[str, str]:
    return {key: items[-1] for key, items in values.items()}


def _body(raw: bytes, content_type: str) -> dict[str, str]:
    """A JSON or form body as a flat dict of strings (non-strings become "")."""
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(key): value if isinstance(value, str) else "" for key, value in data.items()}
    return _flat(parse_qs(raw.decode("utf-8", "replace")))
