"""``oidc-link serve`` as operators run it: a real granian server on a real Redis, live Link
mode against the fake Link server; graceful SIGTERM, keep-alive, and what production refuses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from bs4 import BeautifulSoup

from oidc_link.cli import main
from oidc_link.config import settings_from_mapping
from oidc_link.config.production import production_problems
from oidc_link.server import (
    Listen,
    build_worker_app,
    claim_address,
    forget_configuration_environment,
    listen_from,
    provider_server,
)
from tests.conftest import SHOP_CALLBACK, SHOP_SECRET, provider_config
from tests.fake_link_server import FakeLinkServer
from tests.redis_process import RedisProcess, stoppable_redis

# Generated once (as `oidc-link keys generate-kek` and `openssl rand -hex 32` would): production
# refuses made-up ones.
KEK = "fEqs5Yd8x7i7WH2vG93uEfxSe-0mEB6wogzEcqUnHp8="
SUBJECT_SALT = "47b2e1ef4c2ccf716f718dc40a1f06d9edf03f297d08a485e32238322660862e"
CLIENT = f"""
[[clients]]
client_id = "shop"
client_secret = "{SHOP_SECRET}"
redirect_uris = ["{SHOP_CALLBACK}"]
"""
# Another program listening on a port (argv[1]) with SO_REUSEADDR and SO_REUSEPORT set, as
# granian's workers do; it says "listening" once it does, then waits to be killed.
HOLD_PORT = """
import signal, socket, sys
holder = socket.socket()
holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
holder.bind(("127.0.0.1", int(sys.argv[1])))
holder.listen()
print("listening", flush=True)
signal.pause()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_config(port: int, redis_url: str, link: FakeLinkServer, server: str = "") -> str:
    return f"""
issuer = "http://127.0.0.1:{port}"
redis_url = "{redis_url}"
subject_salt = "{SUBJECT_SALT}"

[keys]
encryption_key = "{KEK}"

[link]
mode = "live"

[link.live]
base_url = "{link.url}"
publishable_key = "{link.publishable_key}"
read_timeout = 10

[server]
port = {port}
workers = 2
threads = 4
# Well inside Served.stop's wait: a worker that misses SIGTERM at start-up is killed then.
graceful_timeout = 10
{server}
{CLIENT}"""


def sandbox_config(port: int, redis_url: str | None = None) -> str:
    redis_line = f'redis_url = "{redis_url}"' if redis_url else ""
    return f"""
issuer = "http://127.0.0.1:{port}"
{redis_line}

[[link.sandbox.users]]
email = "jenny@example.com"
phone = "+14155550123"

[server]
port = {port}
graceful_timeout = 10
{CLIENT}"""


@dataclass
class Served:
    """A running ``oidc-link serve`` and the file its output goes to."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[int]:
        children: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            children += [int(pid) for pid in (task / "children").read_text().split()]
        return children

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Its whole session: the --dev reloader's child, a stuck worker.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise


def serve(tmp_path: Path, config: str, *flags: str) -> Served:
    """Start ``oidc-link serve`` (installed beside this Python) and wait until it answers."""
    path = tmp_path / "oidc-link.toml"
    path.write_text(config)
    port = tomllib.loads(config)["server"]["port"]
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "oidc_link.cli", "serve", "--config", str(path), *flags],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, url, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return served
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or a first answer slower than 2 s on a loaded machine (the
            # dev server builds its app on the first request): ask again until the deadline.
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                served.stop()
            pytest.fail(f"oidc-link serve did not answer:\n{served.output()}")
        time.sleep(0.1)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own; fails instead of skipping when CI requires one."""
    data = tmp_path / "redis"
    data.mkdir()
    with stoppable_redis(data) as process:
        yield process


@pytest.fixture
def live(tmp_path: Path, redis_server: RedisProcess, fake_link: FakeLinkServer) -> Iterator[Served]:
    served = serve(
        tmp_path,
        live_config(free_port(), redis_server.url, fake_link, "keepalive = 2\n"),
    )
    yield served
    served.stop()


def test_serve_answers_from_several_worker_processes(live: Served) -> None:
    discovery = requests.get(live.url + "/.well-known/openid-configuration", timeout=5)

    assert discovery.status_code == 200
    assert discovery.json()["issuer"] == live.url
    assert len(live.workers()) == 2
    assert "2 worker(s) x 4 thread(s)" in live.output()


def test_sigterm_lets_an_in_flight_sign_in_step_finish_then_exits_0(
    live: Served, fake_link: FakeLinkServer
) -> None:
    cookie, action, csrf = _email_page(live.url)
    fake_link.latency = 1.5  # the lookup and the SMS each take this long
    answers: list[requests.Response] = []

    def submit() -> None:
        answers.append(
            requests.post(
                live.url + action,
                data={"csrf_token": csrf, "email": "jenny@example.com"},
                headers={"Cookie": cookie},
                allow_redirects=False,
                timeout=30,
            )
        )

    posting = threading.Thread(target=submit)
    posting.start()
    deadline = time.monotonic() + 10
    while fake_link.count("/api/lookup-email") == 0:
        assert time.monotonic() < deadline, "the lookup never reached Link"
        time.sleep(0.02)
    live.process.send_signal(signal.SIGTERM)
    posting.join(timeout=30)

    # The step finished as it would have without the signal: Link texted a code and the
    # browser is sent on to the code page.
    assert answers, "the in-flight request got no answer"
    assert answers[0].status_code == 303
    assert answers[0].headers["Location"] == action.removesuffix("/email")
    assert fake_link.count("/api/start_verification") == 1
    assert live.process.wait(timeout=30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(live.url + "/healthz", timeout=2)


def test_sigterm_while_workers_are_still_starting_stops_within_the_grace_period(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    # Usually at once (a worker still building the app exits on SIGTERM); a worker that
    # misses it in the instant granian installs its own handlers is killed at the end of
    # the grace period.
    path = tmp_path / "oidc-link.toml"
    path.write_text(
        sandbox_config(free_port(), redis_server.url).replace(
            "graceful_timeout = 10", "graceful_timeout = 3\nworkers = 2"
        )
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "oidc_link.cli", "serve", "--config", str(path),
             "--allow-sandbox"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "Spawning worker-2" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)  # the workers are building the app now

        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_an_idle_keep_alive_connection_lasts_until_the_configured_keepalive(
    live: Served,
) -> None:
    host, port = urlsplit(live.url).hostname, urlsplit(live.url).port
    with socket.create_connection((host, port), timeout=5) as connection:
        request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        connection.sendall(request)
        assert b" 200 " in _read_answer(connection)

        time.sleep(0.5)  # well inside keepalive = 2: the same connection serves again
        connection.sendall(request)
        assert b" 200 " in _read_answer(connection)

        time.sleep(4)  # past keepalive = 2: no request header within it closes the connection
        assert connection.recv(1024) == b"", "the server kept an idle connection open"


def test_a_new_instance_serves_on_the_port_at_once_after_one_with_keep_alive_clients_stopped(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    port = free_port()
    config = sandbox_config(port, redis_server.url)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = serve(tmp_path / "first", config, "--allow-sandbox")
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
    try:
        for connection in clients:  # served, then left open as keep-alive connections
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert b" 200 " in _read_answer(connection)
        assert first.stop() == 0

        # The connections the old instance closed linger in the kernel (FIN_WAIT, then
        # TIME_WAIT for a minute): a plain bind, the check as it was, would refuse the port.
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):
            plain.bind(("127.0.0.1", port))
        listen = Listen("127.0.0.1", port, workers=2, threads=1)
        assert claim_address(listen) == listen  # the check serve makes lets it through

        second = serve(tmp_path / "second", config, "--allow-sandbox")
        try:
            assert requests.get(second.url + "/jwks.json", timeout=5).status_code == 200
        finally:
            assert second.stop() == 0
    finally:
        for connection in clients:
            connection.close()
    assert "Cannot listen" not in second.output()


def test_a_port_another_live_process_listens_on_is_refused_with_a_clear_message(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    port = free_port()
    # Held the way granian's own workers hold theirs, SO_REUSEPORT included: serve must not
    # quietly share the port with it.
    holder = subprocess.Popen([sys.executable, "-c", HOLD_PORT, str(port)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"listening\n"
        path = tmp_path / "oidc-link.toml"
        path.write_text(sandbox_config(port, redis_server.url))
        refused = subprocess.run(
            [sys.executable, "-m", "oidc_link.cli", "serve", "--config", str(path),
             "--allow-sandbox"],
            capture_output=True, timeout=60,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()

    assert refused.returncode == 1
    assert f"Cannot listen: 127.0.0.1:{port} is already in use" in refused.stderr.decode()


def test_the_default_keepalive_outlasts_a_60_second_load_balancer() -> None:
    settings = settings_from_mapping(provider_config(), {"SHOP_SECRET": SHOP_SECRET})

    assert settings.server.keepalive == 75
    # granian's command line caps its header read timeout (which closes idle keep-alive
    # connections) at 60 s; the server is built through its API, which takes 75 s.
    server = provider_server(settings, listen_from(settings))
    assert server.http1_settings.header_read_timeout == 75_000
    assert server.http1_settings.keep_alive


def test_server_settings_come_from_the_environment_too() -> None:
    settings = settings_from_mapping(
        provider_config(),
        {
            "SHOP_SECRET": SHOP_SECRET,
            "OIDC_LINK_SERVER_WORKERS": "4",
            "OIDC_LINK_SERVER_KEEPALIVE": "90",
        },
    )

    assert (settings.server.workers, settings.server.keepalive) == (4, 90)


def test_the_settings_name_every_environment_variable_the_configuration_read() -> None:
    settings = settings_from_mapping(
        provider_config(), {"SHOP_SECRET": SHOP_SECRET, "OIDC_LINK_SERVER_WORKERS": "4"}
    )

    # Referenced as ${SHOP_SECRET}, and an override that is set; overrides looked up but
    # unset are named too (dropping them is harmless).
    assert {"SHOP_SECRET", "OIDC_LINK_SERVER_WORKERS"} <= settings.environment_names
    assert "OIDC_LINK_KEY_ENCRYPTION_KEY" in settings.environment_names


def test_a_worker_drops_the_environment_the_configuration_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_SECRET", SHOP_SECRET)
    monkeypatch.setenv("UNRELATED_SETTING", "kept")
    settings = settings_from_mapping(provider_config(), os.environ)
    for name in settings.environment_names & os.environ.keys():
        monkeypatch.setenv(name, os.environ[name])  # restored for the tests after this one

    build_worker_app(settings)  # what each granian worker runs before it serves

    # granian copies os.environ into every request's WSGI environ after this point.
    assert "SHOP_SECRET" not in os.environ
    assert os.environ["UNRELATED_SETTING"] == "kept"


def test_the_metrics_directory_stays_in_a_workers_environment() -> None:
    settings = settings_from_mapping(
        provider_config(), {"SHOP_SECRET": SHOP_SECRET, "PROMETHEUS_MULTIPROC_DIR": "/m"}
    )
    environ = {"SHOP_SECRET": SHOP_SECRET, "PROMETHEUS_MULTIPROC_DIR": "/m"}
    assert "PROMETHEUS_MULTIPROC_DIR" in settings.environment_names  # [metrics] reads it

    forget_configuration_environment(settings, environ)

    # prometheus-client reads it whenever a worker adds a series.
    assert environ == {"PROMETHEUS_MULTIPROC_DIR": "/m"}


def test_allow_sandbox_runs_the_production_server_with_a_warning(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    served = serve(tmp_path, sandbox_config(free_port(), redis_server.url), "--allow-sandbox")
    try:
        assert len(served.workers()) == 2
        assert requests.get(served.url + "/jwks.json", timeout=5).status_code == 200
    finally:
        assert served.stop() == 0
    assert '"level":"warning"' in served.output()  # a JSON line, written compactly
    assert "--allow-sandbox: serving with the sandbox Link network" in served.output()


def test_the_main_process_serves_the_metrics_of_every_worker(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    metrics_port = free_port()
    config = sandbox_config(free_port(), redis_server.url).replace(
        "[server]", f"[metrics]\nenabled = true\nport = {metrics_port}\n\n[server]"
    )
    served = serve(tmp_path, config, "--allow-sandbox")
    try:
        for _ in range(20):  # spread over both workers' connections
            requests.get(served.url + "/.well-known/openid-configuration", timeout=5)
        scrape = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    finally:
        assert served.stop() == 0

    assert scrape.status_code == 200
    # Every request is counted, whichever worker answered it.
    assert (
        'oidc_link_http_request_duration_seconds_count{endpoint="protocol.discovery",'
        'method="GET",status="200"} 20.0'
    ) in scrape.text


def test_dev_serves_the_sandbox_on_fakeredis_with_the_reloader(tmp_path: Path) -> None:
    served = serve(tmp_path, sandbox_config(free_port()), "--dev")
    try:
        page = requests.get(served.url + "/.well-known/openid-configuration", timeout=5)
        assert page.status_code == 200
        # werkzeug's reloader: a watching parent and the serving child.
        assert len(served.workers()) == 1
    finally:
        served.stop()


# What production refuses (in-process: the command stops before it serves anything).


def _write(tmp_path: Path, config: str) -> str:
    path = tmp_path / "production.toml"
    path.write_text(config)
    return str(path)


def test_production_refuses_the_embedded_fakeredis(
    tmp_path: Path, fake_link: FakeLinkServer, capsys: pytest.CaptureFixture
) -> None:
    config = live_config(8000, "", fake_link).replace('redis_url = ""\n', "")

    assert main(["serve", "--config", _write(tmp_path, config)]) == 1
    error = capsys.readouterr().err
    assert "1 problem(s)" in error
    assert "redis_url: is required in production" in error


def test_production_refuses_the_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = sandbox_config(8000, "redis://127.0.0.1:1/0")

    assert main(["serve", "--config", _write(tmp_path, config)]) == 1
    error = capsys.readouterr().err
    assert "1 problem(s)" in error
    assert "link.mode: is 'sandbox'" in error


def test_production_refuses_an_http_issuer_other_than_loopback(
    tmp_path: Path, fake_link: FakeLinkServer, capsys: pytest.CaptureFixture
) -> None:
    config = live_config(8000, "redis://127.0.0.1:1/0", fake_link).replace(
        'issuer = "http://127.0.0.1:8000"', 'issuer = "http://login.example.test"'
    )

    assert main(["serve", "--config", _write(tmp_path, config)]) == 1
    assert "issuer: must be an https URL" in capsys.readouterr().err


def test_production_names_every_problem_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _write(tmp_path, sandbox_config(8000))

    assert main(["serve", "--config", path]) == 1
    error = capsys.readouterr().err
    assert "2 problem(s)" in error
    assert f"{path}: redis_url:" in error
    assert f"{path}: link.mode:" in error


def test_allow_sandbox_still_refuses_the_embedded_fakeredis(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _write(tmp_path, sandbox_config(8000))

    assert main(["serve", "--config", path, "--allow-sandbox"]) == 1
    error = capsys.readouterr().err
    assert "redis_url:" in error
    assert "link.mode" not in error


def test_serve_stops_with_a_message_before_any_worker_when_redis_does_not_answer(
    tmp_path: Path, fake_link: FakeLinkServer, capsys: pytest.CaptureFixture
) -> None:
    config = live_config(free_port(), f"redis://127.0.0.1:{free_port()}/0", fake_link)

    assert main(["serve", "--config", _write(tmp_path, config)]) == 1
    assert "Cannot use Redis" in capsys.readouterr().err


def test_the_production_rules_cover_the_issuer_on_their_own() -> None:
    """The configuration refuses such an issuer first; the rule stays whole here too."""
    settings = settings_from_mapping(provider_config(), {"SHOP_SECRET": SHOP_SECRET})
    plain_http = replace(
        settings,
        issuer="http://login.example.test",
        redis_url="redis://r",
        subject_salt=SUBJECT_SALT,
    )

    problems = production_problems(plain_http, allow_sandbox=True)

    assert [problem.field for problem in problems] == ["issuer"]


def test_check_config_production_applies_the_same_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = _write(tmp_path, sandbox_config(8000))

    assert main(["check-config", path]) == 0
    assert main(["check-config", path, "--production"]) == 1
    out = capsys.readouterr().out
    assert "2 problem(s) found for production." in out
    assert main(["check-config", path, "--production", "--allow-sandbox"]) == 1


# Helpers.


def _email_page(base: str) -> tuple[str, str, str]:
    """Start a sign-in at /authorize: the flow cookie, the email form's action and token."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "shop",
            "redirect_uri": SHOP_CALLBACK,
            "scope": "openid email",
            "state": "s",
            "nonce": "n",
            "code_challenge": "E9Melhoe2OwvFrEMTJguCHaoeK1t8URWbuGpSTs2Hsc",
            "code_challenge_method": "S256",
        }
    )
    page = requests.get(f"{base}/authorize?{query}", allow_redirects=False, timeout=5)
    assert page.status_code == 200, page.text  # the email page is /authorize's answer
    cookie = "; ".join(f"{c.name}={c.value}" for c in page.cookies)
    form = BeautifulSoup(page.text, "html.parser").find("form", method="post")
    token = form.find("input", attrs={"name": "csrf_token"})["value"]
    return cookie, form["action"], token


def _read_answer(connection: socket.socket) -> bytes:
    """One HTTP/1.1 answer with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(4096)
    return head
