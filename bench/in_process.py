"""``python -m bench.in_process``: oidc-link's own CPU per operation, without an HTTP server.

The Flask app runs in this process on a real redis-server and is driven through Flask's test
client, one request at a time, so the figures move only with the application's code (not
the HTTP server, not the load driver, hardly with a busy machine): the before/after numbers
of each optimisation in docs/performance.md. ``--profile`` adds cProfile's top functions.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import logging
import pstats
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bench.processes import (
    CLIENT_ID,
    CLIENT_SECRET,
    EMAIL,
    REDIRECT_URI,
    SANDBOX_CODE,
    RedisServer,
    oidc_link_config,
)
from oidc_link import create_app
from oidc_link.config import load_settings
from oidc_link.logs import configure_logging

ISSUER = "http://127.0.0.1:9999"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
FORM = re.compile(r'<form method="post" action="([^"]*)"[^>]*>\s*<input type="hidden" '
                  r'name="csrf_token" value="([^"]*)"')  # fmt: skip


class SignIns:
    """A browser and a relying party on the test client: the driver's flow, in Python."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.refresh_token = ""

    def _form(self, client: FlaskClient, answer: TestResponse, suffix: str) -> tuple[str, str]:
        """The form of the page ``answer`` is, or redirects to (a 303 after a POST)."""
        if answer.status_code in (302, 303):
            answer = client.get(answer.headers["Location"], base_url=ISSUER)
        page = answer.get_data(as_text=True)
        return next((a, t) for a, t in FORM.findall(page) if a.endswith(suffix))

    def sign_in(self) -> dict[str, Any]:
        client = self.app.test_client()
        verifier = secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                "scope": "openid email profile offline_access", "state": "s", "nonce": "n",
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
        )  # fmt: skip
        # The email page is /authorize's answer (a 303 to it before 2026-12-03).
        answer = client.get("/authorize?" + query, base_url=ISSUER)
        action, csrf = self._form(client, answer, "/email")
        answer = client.post(action, data={"csrf_token": csrf, "email": EMAIL}, base_url=ISSUER)
        action, csrf = self._form(client, answer, "/code")
        answer = client.post(
            action, data={"csrf_token": csrf, "code": SANDBOX_CODE}, base_url=ISSUER
        )
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        tokens = self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            }
        )
        self.refresh_token = tokens["refresh_token"]
        return tokens

    def refresh(self) -> dict[str, Any]:
        if not self.refresh_token:
            self.sign_in()
        tokens = self._token({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
        self.refresh_token = tokens["refresh_token"]
        return tokens

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        answer = self.app.test_client().post(
            "/token", data=form, headers={"Authorization": BASIC}, base_url=ISSUER
        )
        if answer.status_code != 200:
            raise RuntimeError(f"token endpoint: {answer.status_code} {answer.get_data()!r}")
        return answer.get_json()

    def discovery(self) -> None:
        self._get("/.well-known/openid-configuration")

    def jwks(self) -> None:
        self._get("/jwks.json")

    def _get(self, path: str) -> None:
        answer = self.app.test_client().get(path, base_url=ISSUER)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code}")


def cpu_ms_per_call(operation: Callable[[], object], count: int) -> float:
    for _ in range(max(5, count // 10)):  # warm-up
        operation()
    started = time.process_time()
    for _ in range(count):
        operation()
    return (time.process_time() - started) * 1000 / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.in_process", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="operations of each kind")
    parser.add_argument("--profile", choices=("signin", "refresh", "discovery", "jwks"))
    parser.add_argument(
        "--request-log",
        action="store_true",
        help="write the JSON request log as `oidc-link serve` does (INFO, to a scratch file) "
        "instead of keeping warnings only",
    )
    args = parser.parse_args(argv)
    count = max(10, min(args.count, 20_000))
    with tempfile.TemporaryDirectory(prefix="oidc-link-in-process-") as temporary:
        workdir = Path(temporary)
        redis_server = RedisServer(workdir, "in-process")
        try:
            config = workdir / "oidc-link.toml"
            config.write_text(oidc_link_config(ISSUER, redis_server.url))
            app = create_app(load_settings(str(config)))
            if args.request_log:
                # What a production server pays per request: one masked JSON line.
                log_file = open(workdir / "oidc-link.log", "w")  # noqa: SIM115 - until exit
                configure_logging("json", "INFO", stream=log_file)
            else:
                # The sandbox prints every code and each request logs a line: keep warnings.
                logging.disable(logging.INFO)
            flows = SignIns(app)
            operations = {
                "signin": flows.sign_in,
                "refresh": flows.refresh,
                "discovery": flows.discovery,
                "jwks": flows.jwks,
            }
            sys.stderr = open(workdir / "stderr.txt", "w")  # noqa: SIM115 - sandbox console
            try:
                figures = {name: cpu_ms_per_call(op, count) for name, op in operations.items()}
                profile = None
                if args.profile:
                    profile = cProfile.Profile()
                    profile.runcall(lambda: [operations[args.profile]() for _ in range(count)])
            finally:
                sys.stderr.close()
                sys.stderr = sys.__stderr__
        finally:
            redis_server.stop()
    for name, value in figures.items():
        print(f"{name:10} {value:6.3f} ms CPU per operation (app + test client)")
    if profile is not None:
        print(f"\nWhere {args.profile}'s CPU goes (cProfile self time, by library):\n")
        print(by_library(pstats.Stats(profile)))
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


# Which library a function belongs to, by the path of its file (first match wins).
LIBRARIES = (
    ("socket I/O (Redis replies and commands)", ("sendall", "recv", "'_socket.")),
    ("redis-py", ("/redis/",)),
    ("hiredis", ("hiredis",)),
    ("Authlib", ("/authlib/", "/joserfc/")),
    ("Jinja (templates)", ("/jinja2/", "/markupsafe/")),
    ("PyJWT + cryptography (RSA)", ("/jwt/", "cryptography", "'sign' of")),
    ("logging", ("/logging/", "oidc_link/logs.py", "request_log.py")),
    ("metrics", ("prometheus_client", "metrics")),
    ("Flask + Werkzeug (incl. test client)", ("/flask/", "/werkzeug/")),
    ("json", ("/json/", "_json.")),
    ("oidc-link", ("/oidc_link/",)),
    ("this benchmark", ("/bench/",)),
)


def by_library(stats: pstats.Stats) -> str:
    shares: dict[str, float] = {}
    total = 0.0
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        self_time = row[2]
        total += self_time
        where = f"{filename} {function}"
        name = next(
            (label for label, marks in LIBRARIES if any(m in where for m in marks)),
            "Python standard library and the rest",
        )
        shares[name] = shares.get(name, 0.0) + self_time
    lines = [f"{100 * t / total:5.1f} %  {name}" for name, t in sorted(
        shares.items(), key=lambda item: -item[1])]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
