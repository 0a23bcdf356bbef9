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
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bench import floor_app, step_budget
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
from oidc_link.link.measured import MeasuredLinkClient
from oidc_link.link.switch import make_link_client
from oidc_link.logs import configure_logging
from oidc_link.metrics import Metrics
from oidc_link.services import build_services

ISSUER = "http://127.0.0.1:9999"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
FORM = re.compile(r'<form method="post" action="([^"]*)"[^>]*>\s*<input type="hidden" '
                  r'name="csrf_token" value="([^"]*)"')  # fmt: skip


class SignIns:
    """A browser and a relying party on the test client: the driver's flow, in Python."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.refresh_token = ""
        # Process CPU seconds spent in each exchange (step_budget's step names), summed.
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        started = time.process_time()
        yield
        self.spent[name] += time.process_time() - started

    def _form(self, client: FlaskClient, answer: TestResponse, suffix: str) -> tuple[str, str]:
        """The form of the page ``answer`` is, or redirects to (a 303 after a POST: the code
        page)."""
        if answer.status_code in (302, 303):
            with self._step("code page"):
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
        with self._step("authorize page"):
            answer = client.get("/authorize?" + query, base_url=ISSUER)
        action, csrf = self._form(client, answer, "/email")
        with self._step("email POST"):
            answer = client.post(action, data={"csrf_token": csrf, "email": EMAIL}, base_url=ISSUER)
        action, csrf = self._form(client, answer, "/code")
        with self._step("code POST"):
            answer = client.post(
                action, data={"csrf_token": csrf, "code": SANDBOX_CODE}, base_url=ISSUER
            )
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        tokens = self._token(
            "token",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        self.refresh_token = tokens["refresh_token"]
        return tokens

    def refresh(self) -> dict[str, Any]:
        if not self.refresh_token:
            self.sign_in()
        tokens = self._token(
            "refresh grant", {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        )
        self.refresh_token = tokens["refresh_token"]
        return tokens

    def _token(self, step: str, form: dict[str, str]) -> dict[str, Any]:
        client = self.app.test_client()
        with self._step(step):
            answer = client.post(
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


def client_overhead_ms(count: int) -> dict[str, float]:
    """The Flask test client's own CPU per request, by method: the same client around a
    WSGI app that answers fixed bytes (bench/floor_app.py), so nothing of Flask's request
    handling is counted."""
    bare = Flask("bench_test_client")
    bare.wsgi_app = floor_app.app  # type: ignore[method-assign]
    client = bare.test_client()
    form = {"csrf_token": "c" * 43, "email": EMAIL}
    return {
        "GET": cpu_ms_per_call(lambda: client.get("/jwks.json", base_url=ISSUER), count),
        "POST": cpu_ms_per_call(lambda: client.post("/token", data=form, base_url=ISSUER), count),
    }


def unrecorded_metrics() -> Metrics:
    """Metrics whose every recording method does nothing, and whose timer never reads a
    clock: the app with metrics off. Found by introspection, so a method added later is
    switched off too."""

    def nothing(*_args: object, **_kwargs: object) -> None:
        return None

    def no_time() -> float:
        return 0.0

    recorders = {
        name: nothing
        for name, member in vars(Metrics).items()
        if not name.startswith("_")
        and callable(member)
        and not isinstance(member, classmethod | staticmethod)
    }
    quiet = type("UnrecordedMetrics", (Metrics,), recorders).standalone()
    quiet.timer = no_time
    return quiet


def app_without_metrics(config: Path) -> Flask:
    """The same app as ``create_app(load_settings(config))``, its metrics recording nothing
    (the Link client records its calls, so it is rebuilt on the quiet metrics too)."""
    settings = load_settings(str(config))
    services = build_services(settings)
    quiet = unrecorded_metrics()
    link = make_link_client(settings.link, services.clock, None, services.store.sandbox)
    return create_app(
        settings, replace(services, metrics=quiet, link=MeasuredLinkClient(link, quiet))
    )


# The request log and metrics as `oidc-link serve` has them, then each turned off.
AS_SERVED, LOG_OFF, METRICS_OFF = "as served", "log off", "metrics off"


def step_rounds(apps: dict[str, Flask], count: int, rounds: int) -> dict[str, list[dict]]:
    """CPU per exchange of ``count`` sign-ins, each followed by a refresh grant, on each
    variant; ``rounds`` times. The variants take turns sign-in by sign-in (their order
    rotating), so that a machine growing busier favours none: a difference of a few percent
    stays visible. The request log is on unless LOG_OFF."""
    variants = list(apps)
    flows = {variant: SignIns(app) for variant, app in apps.items()}
    figures: dict[str, list[dict]] = {variant: [] for variant in variants}

    def sign_in_each(repeats: int) -> None:
        for repeat in range(repeats):
            shift = repeat % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                logging.disable(logging.INFO if variant == LOG_OFF else logging.NOTSET)
                flows[variant].sign_in()
                flows[variant].refresh()

    try:
        sign_in_each(max(5, count // 10))  # warm-up
        for _ in range(rounds):
            for variant in variants:
                flows[variant].spent.clear()
            sign_in_each(count)
            for variant in variants:
                spent = flows[variant].spent.items()
                figures[variant].append({step: s * 1000 / count for step, s in spent})
    finally:
        logging.disable(logging.NOTSET)
    return figures


def sign_in_total(steps: dict[str, float]) -> float:
    return sum(steps[step.name] for step in step_budget.SIGN_IN)


def budget_report(figures: dict[str, list[dict]], overheads: step_budget.Overheads) -> str:
    served = figures[AS_SERVED]
    medians = {
        step.name: statistics.median(r[step.name] for r in served) for step in step_budget.STEPS
    }

    def cost_of(variant: str) -> float:
        # The median of per-round differences between variants that took turns.
        return statistics.median(
            sign_in_total(on) - sign_in_total(off)
            for on, off in zip(served, figures[variant], strict=True)
        )

    client = overheads.test_client
    return "\n".join(
        [
            step_budget.table(medians, overheads),
            f"test client's own cost, subtracted: GET {client['GET']:.3f} ms, "
            f"POST {client['POST']:.3f} ms (the same client on fixed bytes)",
            f"granian per request, added: {overheads.server:.3f} ms "
            "(in-process runs without a server)",
            f"JSON request log: {step_budget.share_of_budget(cost_of(LOG_OFF))}",
            f"metrics: {step_budget.share_of_budget(cost_of(METRICS_OFF))}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.in_process", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="operations of each kind")
    parser.add_argument("--profile", choices=("signin", "refresh", "discovery", "jwks"))
    parser.add_argument(
        "--request-log",
        action="store_true",
        help="write the JSON request log as `oidc-link serve` does (INFO, to a scratch file) "
        "instead of keeping warnings only (the step budget always runs it both ways)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the step budget's sign-ins (median)"
    )
    args = parser.parse_args(argv)
    count = max(10, min(args.count, 20_000))
    rounds = max(1, min(args.rounds, 50))
    with tempfile.TemporaryDirectory(prefix="oidc-link-in-process-") as temporary:
        workdir = Path(temporary)
        redis_server = RedisServer(workdir, "in-process")
        try:
            config = workdir / "oidc-link.toml"
            config.write_text(oidc_link_config(ISSUER, redis_server.url))
            # What a production server pays per request: one masked JSON line. Configured
            # before the app, as `oidc-link serve` does: an app created first finds no
            # handler and Flask gives the "oidc_link" logger its own, which wrote every
            # line a second time (unmasked, to stderr) and doubled the log's cost here.
            log_file = open(workdir / "oidc-link.log", "w")  # noqa: SIM115 - until exit
            configure_logging("json", "INFO", stream=log_file)
            app = create_app(load_settings(str(config)))
            if not args.request_log:
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
                apps = {
                    AS_SERVED: app,
                    LOG_OFF: app,
                    METRICS_OFF: app_without_metrics(config),
                }
                steps = step_rounds(apps, count, rounds)
                overheads = step_budget.Overheads(client_overhead_ms(count))
            finally:
                sys.stderr.close()
                sys.stderr = sys.__stderr__
        finally:
            redis_server.stop()
    for name, value in figures.items():
        print(f"{name:10} {value:6.3f} ms CPU per operation (app + test client)")
    print(
        f"\nA budget per step (ms CPU per exchange, log and metrics on as served; "
        f"{count} sign-ins, each with a refresh grant, x {rounds} rounds, medians):\n"
    )
    print(budget_report(steps, overheads))
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
    ("logging", ("/logging/", "oidc_link/logs", "request_log.py", "orjson")),
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
