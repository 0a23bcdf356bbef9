"""Which production WSGI server runs oidc-link: gunicorn (gthread) against granian (WSGI).

Both serve the real app (``create_app`` on a real redis-server, sandbox Link) with the same
number of worker processes and threads, and the same load drives each: keep-alive
connections from several processes, each repeating discovery, JWKS and ``/authorize`` (which
answers with the hosted email page). The servers take turns for several rounds, since this
machine's speed drifts; the report gives requests per second, latency and server CPU per
request for each round, and the median of the per-round ratios. Loopback only, bounded in
time: ``python -m bench.server_choice [--rounds 3 --seconds 8]`` (needs ``pip install
".[bench]"`` for gunicorn).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.processes import RedisServer, free_port, process_tree_cpu_ms

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "shop"
REDIRECT_URI = "https://shop.example.test/callback"
CONFIG = """
issuer = "http://127.0.0.1:{port}"
redis_url = "{redis_url}"

[[link.sandbox.users]]
email = "jenny@example.com"
phone = "+14155550123"

[[clients]]
client_id = "{client_id}"
client_secret = "bench-secret-0123456789abcdef"
redirect_uris = ["{redirect_uri}"]
"""
AUTHORIZE_QUERY = urlencode(
    {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": "bench-state",
        "nonce": "bench-nonce",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",  # RFC 7636 App. B
        "code_challenge_method": "S256",
    }
)


def wsgi_app():  # type: ignore[no-untyped-def]
    """The app each server builds in every worker process (``OIDC_LINK_CONFIG`` names the
    configuration file)."""
    from oidc_link import create_app
    from oidc_link.config import load_settings

    return create_app(load_settings(None))


# The servers under comparison.


def gunicorn_command(port: int, workers: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--keep-alive", "75",
        "bench.server_choice:wsgi_app()",
    ]  # fmt: skip


def granian_command(port: int, workers: int, threads: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "granian"),
        "--interface", "wsgi",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(workers),
        "--blocking-threads", str(threads),
        "--no-log",
        "--factory",
        "bench.server_choice:wsgi_app",
    ]  # fmt: skip


SERVERS = {"gunicorn": gunicorn_command, "granian": granian_command}


def wait_until_serving(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/.well-known/openid-configuration")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer within 30 s")


# The load.


def drive(port: int, seconds: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One keep-alive connection, requests one after another until time is up."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    def get(path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        nonlocal errors
        started = time.perf_counter()
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        if response.status >= 400:
            errors += 1
        return response

    while time.monotonic() < deadline:
        get("/.well-known/openid-configuration")
        get("/jwks.json")
        started = get(f"/authorize?{AUTHORIZE_QUERY}")
        location = started.getheader("Location")
        if started.status == 303 and location:
            # Before /authorize answered with the email page itself, it redirected to it.
            cookies = [c.split(";", 1)[0] for c in started.headers.get_all("Set-Cookie") or []]
            target = urlsplit(location)
            get(
                target.path + (f"?{target.query}" if target.query else ""),
                {"Cookie": "; ".join(cookies)},
            )
    connection.close()
    results.put((latencies, errors))


@dataclass(frozen=True)
class Round:
    server: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    errors: int


def measure(name: str, workdir: Path, redis_url: str, args: argparse.Namespace) -> Round:
    port = free_port()
    config = workdir / f"{name}.toml"
    config.write_text(
        CONFIG.format(
            port=port, redis_url=redis_url, client_id=CLIENT_ID, redirect_uri=REDIRECT_URI
        )
    )
    environment = {**os.environ, "OIDC_LINK_CONFIG": str(config), "OIDC_LINK_LOG_LEVEL": "WARNING"}
    command = SERVERS[name](port, args.workers, args.threads)
    with (workdir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until_serving(port, process, name)
        run_load(port, args.connections, 1.0)  # warm-up: imports, templates, connections
        cpu_before = process_tree_cpu_ms(process.pid)
        started = time.monotonic()
        latencies, errors = run_load(port, args.connections, args.seconds)
        elapsed = time.monotonic() - started
        cpu_ms = process_tree_cpu_ms(process.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    latencies.sort()
    count = len(latencies)
    return Round(
        server=name,
        requests_per_second=count / elapsed,
        p50_ms=latencies[count // 2] * 1000,
        p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000,
        cpu_ms_per_request=cpu_ms / count,
        errors=errors,
    )


def run_load(port: int, connections: int, seconds: float) -> tuple[list[float], int]:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    drivers = [
        multiprocessing.Process(target=drive, args=(port, seconds, results))
        for _ in range(connections)
    ]
    for driver in drivers:
        driver.start()
    latencies: list[float] = []
    errors = 0
    for _ in drivers:
        some, failed = results.get(timeout=seconds + 60)
        latencies.extend(some)
        errors += failed
    for driver in drivers:
        driver.join()
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="load per server per round")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="as [server] threads")
    parser.add_argument("--connections", type=int, default=8, help="load processes, one each")
    args = parser.parse_args()
    for name in SERVERS:
        if importlib.util.find_spec(name) is None:
            sys.exit(f"{name} is not installed: pip install '.[bench]'")
    print(
        f"{args.rounds} rounds x {args.seconds:g} s per server; {args.workers} workers x "
        f"{args.threads} threads; {args.connections} keep-alive connections; "
        f"{os.cpu_count()} CPUs"
    )
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="server-choice-") as temporary:
        workdir = Path(temporary)
        redis_server = RedisServer(workdir, "server-choice")
        redis_url = redis_server.url
        try:
            for index in range(args.rounds):
                order = list(SERVERS) if index % 2 == 0 else list(reversed(SERVERS))
                for name in order:
                    result = measure(name, workdir, redis_url, args)
                    rounds.append(result)
                    print(
                        f"round {index + 1} {name:9} {result.requests_per_second:8.0f} req/s  "
                        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"server CPU {result.cpu_ms_per_request:5.2f} ms/req  "
                        f"errors {result.errors}",
                        flush=True,
                    )
        finally:
            redis_server.stop()
    summarize(rounds, args.rounds)
    failed = sum(r.errors for r in rounds)
    if failed:
        # Error answers are cheap and fast: a run with any is no measurement of the servers.
        sys.exit(f"{failed} request(s) failed: these figures do not measure the servers")


def summarize(rounds: list[Round], count: int) -> None:
    by_server = {name: [r for r in rounds if r.server == name] for name in SERVERS}
    for name, results in by_server.items():
        print(
            f"median {name:9} {statistics.median(r.requests_per_second for r in results):8.0f} "
            f"req/s  p50 {statistics.median(r.p50_ms for r in results):6.2f} ms  "
            f"p99 {statistics.median(r.p99_ms for r in results):6.2f} ms  server CPU "
            f"{statistics.median(r.cpu_ms_per_request for r in results):5.2f} ms/req"
        )
    pairs = list(zip(by_server["granian"], by_server["gunicorn"], strict=True))[:count]
    throughput = statistics.median(a.requests_per_second / b.requests_per_second for a, b in pairs)
    cpu = statistics.median(a.cpu_ms_per_request / b.cpu_ms_per_request for a, b in pairs)
    print(
        f"granian / gunicorn, median of per-round ratios: throughput {throughput:.2f}x, "
        f"server CPU per request {cpu:.2f}x"
    )


if __name__ == "__main__":
    main()
