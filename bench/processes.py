"""The processes a benchmark run starts: one redis-server per server under test, oidc-link
with its production server, and the two node-oidc-provider peers (automatic login, and the
same two forms as oidc-link); and the CPU time of a process tree.

Everything listens on 127.0.0.1 only, and everything started here is stopped here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "node"
CLIENT_ID = "shop"
# 32 characters or more, as `serve` requires outside --dev.
CLIENT_SECRET = "bench-secret-0123456789abcdef-0123456789"  # noqa: S105 - a loopback benchmark's client
# The relying party's callback: never contacted, the driver reads the code off the redirect.
REDIRECT_URI = "http://127.0.0.1:9/callback"
EMAIL = "jenny@example.com"
SANDBOX_CODE = "000000"  # the sandbox's magic code that always signs in (link/sandbox.py)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree_cpu_ms(root: int) -> float:
    """User + system CPU of ``root`` and all its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited meanwhile
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = int(fields[11]) + int(fields[12])  # utime, stime (proc(5) fields 14, 15)
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += times.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total * 1000 / CLOCK_TICKS


def wait_until(
    check: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start-up:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (OSError, redis.ConnectionError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in 30 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class RedisServer:
    """A redis-server of its own on a loopback port; no persistence, for either server alike."""

    def __init__(self, workdir: Path, name: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        log = workdir / f"redis-{name}.log"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis.from_url(self.url, decode_responses=True)
        wait_until(self.client.ping, "redis-server", self.process, log)

    def command_calls(self) -> int:
        """Commands run so far, leaving out what the benchmark itself asks (INFO, SCAN...)."""
        ours = {"info", "scan", "memory|usage", "memory", "config|resetstat", "ping", "type"}
        stats = self.client.info("commandstats")
        return sum(
            value["calls"]
            for name, value in stats.items()
            if name.removeprefix("cmdstat_") not in ours
        )

    def keys(self) -> set[str]:
        return set(self.client.scan_iter(count=1000))

    def memory_usage(self, keys: set[str]) -> int:
        return sum(self.client.memory_usage(key, samples=0) or 0 for key in keys)

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process)


@dataclass
class ServerUnderTest:
    """A running server and what the driver needs to know to sign in against it."""

    name: str
    issuer: str
    process: subprocess.Popen[bytes]
    redis: RedisServer
    # Where a sign-in waits for the user: the page asking for this field, or the redirect
    # to this path (the driver stops there to measure a pending flow's Redis bytes).
    pending: dict[str, str]
    # The fields of the hosted forms a sign-in fills, in order: the driver fails a sign-in
    # that fills other ones, so a server cannot skip a step unnoticed.
    forms: tuple[str, ...]
    scope: str = "openid email profile offline_access"
    notes: list[str] = field(default_factory=list)
    command: str = ""

    def driver_spec(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
            "redirectUri": REDIRECT_URI,
            "email": EMAIL,
            "code": SANDBOX_CODE,
            "scope": self.scope,
            "forms": list(self.forms),
        }

    def cpu_ms(self) -> float:
        return process_tree_cpu_ms(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)
        self.redis.stop()


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
        return response.status == 200


# Abuse limits far above what the benchmark does: it signs one user in thousands of times
# from one address, which the defaults rightly stop after a few.
BENCH_LIMITS = {
    "sms_per_email": 1_000_000_000,
    "sms_per_email_ceiling": 1_000_000_000,
    "lookups_per_ip": 1_000_000_000,
    "client_daily_sms": 1_000_000_000,
}

OIDC_LINK_CONFIG = """\
issuer = "{issuer}"
# Generated (openssl rand -hex 32): `serve` refuses a made-up salt even with --allow-sandbox.
subject_salt = "18c3a5e6cde7f903cea72366a5477b72c6d78eca95e0337a2feb0e4b74625330"
redis_url = "{redis_url}"

[limits]
{limits}
[link]
mode = "sandbox"

[[link.sandbox.users]]
email = "{email}"
phone = "+14155550123"
name = "Jenny Rosen"

[[clients]]
client_id = "{client_id}"
client_secret = "{client_secret}"
redirect_uris = ["{redirect_uri}"]
token_endpoint_auth_method = "client_secret_basic"
name = "Bench Shop"
refresh_tokens = true
"""
# How this tree runs its own oidc-link; bench.versions passes another revision's executable.
THIS_OIDC_LINK = (sys.executable, "-m", "oidc_link.cli")


def oidc_link_config(issuer: str, redis_url: str, limits: Mapping[str, int] = BENCH_LIMITS) -> str:
    """The benchmark's configuration file; ``limits`` fills [limits] (another revision may
    know other limit names)."""
    return OIDC_LINK_CONFIG.format(
        issuer=issuer, redis_url=redis_url, email=EMAIL, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI,
        limits="".join(f"{name} = {value}\n" for name, value in limits.items()),
    )  # fmt: skip


def serve_options(oidc_link: Sequence[str] = THIS_OIDC_LINK) -> str:
    """What ``oidc-link serve --help`` offers, to pass the production-server flags it has."""
    return subprocess.run(
        [*oidc_link, "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout


def start_oidc_link(
    workdir: Path,
    workers: int,
    *,
    oidc_link: Sequence[str] = THIS_OIDC_LINK,
    limits: Mapping[str, int] = BENCH_LIMITS,
) -> ServerUnderTest:
    """``oidc-link serve`` with its own redis-server; ``oidc_link`` is the command that runs
    the CLI (this tree's by default) and ``limits`` the [limits] its configuration sets."""
    redis_server = RedisServer(workdir, "oidc-link")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = workdir / "oidc-link.toml"
    config.write_text(oidc_link_config(issuer, redis_server.url, limits))
    command = [*oidc_link, "serve", "--config", str(config),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    options = serve_options(oidc_link)
    notes = []
    if "--workers" in options:
        command += ["--workers", str(workers)]
    else:
        notes.append("this oidc-link has no --workers: one process (werkzeug, threaded)")
    if "--allow-sandbox" in options:
        command.append("--allow-sandbox")
    log = workdir / "oidc-link.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: _http_ok(issuer + "/.well-known/openid-configuration"),
            "oidc-link", process, log,
        )  # fmt: skip
    except BaseException:
        stop_process(process)
        redis_server.stop()
        raise
    shown = " ".join(["oidc-link", *command[len(oidc_link) :]]).replace(str(config), "FILE")
    return ServerUnderTest(
        "oidc-link",
        issuer,
        process,
        redis_server,
        {"pendingAtField": "code"},
        ("email", "code"),
        notes=notes,
        command=shown,
    )


def node_ready() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"the peer's packages are not installed: run (cd {NODE_DIR} && npm ci)"
    return None


@dataclass(frozen=True)
class PeerKind:
    """One of the node-oidc-provider peers: its script in bench/node and how its sign-in goes."""

    name: str
    script: str
    pending: dict[str, str]
    forms: tuple[str, ...]


# No form: the interaction signs the user in at once (4 HTTP exchanges per sign-in).
AUTOMATIC_PEER = PeerKind("auto-peer", "peer.mjs", {"pendingBeforePath": "/interaction/"}, ())
# oidc-link's two forms, email then code (7 exchanges): the equal-UX peer of issue 16.
FORMS_PEER = PeerKind("forms-peer", "forms_peer.mjs", {"pendingAtField": "code"}, ("email", "code"))


def start_peer(workdir: Path, workers: int, kind: PeerKind = AUTOMATIC_PEER) -> ServerUnderTest:
    problem = node_ready()
    if problem:
        raise RuntimeError(problem)
    redis_server = RedisServer(workdir, kind.name)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "NODE_ENV": "production",
        "PEER_PORT": str(port),
        "PEER_ISSUER": issuer,
        "PEER_REDIS_URL": redis_server.url,
        "PEER_WORKERS": str(workers),
        "PEER_CLIENT_ID": CLIENT_ID,
        "PEER_CLIENT_SECRET": CLIENT_SECRET,
        "PEER_REDIRECT_URI": REDIRECT_URI,
        "PEER_EMAIL": EMAIL,
    }
    log = workdir / f"{kind.name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["node", str(NODE_DIR / kind.script)], cwd=NODE_DIR, env=environment,
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(
            lambda: _http_ok(issuer + "/.well-known/openid-configuration")
            and "listening" in log.read_text(),
            kind.name, process, log,
        )  # fmt: skip
    except BaseException:
        stop_process(process)
        redis_server.stop()
        raise
    return ServerUnderTest(
        kind.name,
        issuer,
        process,
        redis_server,
        kind.pending,
        kind.forms,
        command=f"node bench/node/{kind.script} (cluster, PEER_WORKERS={workers})",
    )


def peer_version() -> str | None:
    package = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not package.exists():
        return None
    return json.loads(package.read_text())["version"]
