"""``python -m bench.server_floor``: what each HTTP server costs before any app work.

Serves two fixed JSON documents (``bench/floor_app.py``: a discovery document and a JWKS,
nothing computed) under granian and gunicorn (when installed: ``pip install ".[bench]"``),
both as ``oidc-link serve`` runs them (2 workers x 8 threads), and from Node's own ``http``
module with 2 cluster workers; the benchmark's driver (``bench/driver.mjs``, its ``jwks``
phase) loads each in turn for several rounds. It prints requests per second and server CPU
per request: the floor under oidc-link's discovery and JWKS figures. A server whose floor
is slower than the peer's whole JWKS answer cannot meet that target, whatever the app does.
Loopback only, bounded by rounds x seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.phases import DRIVER
from bench.processes import free_port, process_tree_cpu_ms, stop_process, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def granian(port: int) -> list[str]:
    return [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "2", "--blocking-threads", "8", "--no-log",
            "bench.floor_app:app"]  # fmt: skip


def gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--worker-class", "gthread", "--threads", "8", "--keep-alive", "75",
            "bench.floor_app:app"]  # fmt: skip


def node(port: int) -> list[str]:
    return ["node", str(ROOT / "bench" / "node" / "floor.mjs")]


SERVERS: dict[str, Callable[[int], list[str]]] = {
    "granian": granian, "gunicorn": gunicorn, "node http": node,
}


def available() -> list[str]:
    names = ["granian", "node http"]
    if importlib.util.find_spec("gunicorn") is not None:
        names.insert(1, "gunicorn")
    return names


def measure(name: str, seconds: float, connections: int) -> tuple[float, float]:
    """Requests per second and server CPU milliseconds per request of one timed run."""
    import urllib.request

    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "FLOOR_ISSUER": issuer}
    process = subprocess.Popen(
        SERVERS[name](port), cwd=ROOT, env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(
            lambda: urllib.request.urlopen(issuer + "/jwks.json", timeout=2).status == 200,  # noqa: S310
            name, process, Path(os.devnull),
        )  # fmt: skip
        spec = {"issuer": issuer, "clientId": "-", "clientSecret": "-", "phase": "jwks",
                "concurrency": connections, "duration": seconds}  # fmt: skip
        driver = subprocess.Popen(
            ["node", str(DRIVER), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert driver.stdout is not None and driver.stdin is not None
        if driver.stdout.readline().strip() != "ready":
            raise RuntimeError("the load driver did not start")
        before = process_tree_cpu_ms(process.pid)
        driver.stdin.write("go\n")
        driver.stdin.flush()
        result = json.loads(driver.stdout.readline())
        cpu_ms = process_tree_cpu_ms(process.pid) - before
        driver.wait(timeout=30)
    finally:
        stop_process(process)
    if result["errors"] or not result["completed"]:
        raise RuntimeError(f"{name}: {result['errors']} errors, {result['completed']} answers")
    return result["perSecond"], cpu_ms / result["completed"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_floor", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16, help="as bench.run's JWKS phase")
    args = parser.parse_args(argv)
    names = available()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for index in range(max(1, args.rounds)):
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            rate, cpu = measure(name, min(args.seconds, 60.0), args.connections)
            figures[name].append((rate, cpu))
            print(f"round {index + 1} {name:9} {rate:8.0f} req/s  server CPU {cpu:6.3f} ms/req",
                  flush=True)  # fmt: skip
    for name in names:
        rate = statistics.median(r for r, _ in figures[name])
        cpu = statistics.median(c for _, c in figures[name])
        print(f"median  {name:9} {rate:8.0f} req/s  server CPU {cpu:6.3f} ms/req")
    return 0


if __name__ == "__main__":
    sys.exit(main())
