"""One timed phase of load: runs bench/driver.mjs against a server and reads the server's
CPU, its Redis server's CPU and its Redis command count around exactly the timed part."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import ServerUnderTest, process_tree_cpu_ms

DRIVER = Path(__file__).resolve().parent / "driver.mjs"


@dataclass(frozen=True)
class PhaseResult:
    server: str
    phase: str
    concurrency: int
    completed: int
    errors: int
    error_samples: list[str]
    seconds: float
    per_second: float
    p50_ms: float | None
    p99_ms: float | None
    exchanges_per_sign_in: float | None
    server_cpu_ms: float
    redis_cpu_ms: float
    redis_commands: int
    driver_cpu_ms: float

    @property
    def server_cpu_per_operation(self) -> float | None:
        return self.server_cpu_ms / self.completed if self.completed else None

    @property
    def redis_commands_per_operation(self) -> float | None:
        return self.redis_commands / self.completed if self.completed else None


def _driver(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["node", str(DRIVER), json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _last_line(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    output, errors = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"the load driver failed:\n{errors[-3000:]}")
    return json.loads(output.strip().splitlines()[-1])


def run_phase(
    server: ServerUnderTest, phase: str, concurrency: int, duration: float
) -> PhaseResult:
    """``phase`` (signin, refresh, discovery, jwks) for ``duration`` seconds by
    ``concurrency`` users; counters are read after the driver's untimed set-up."""
    spec = {**server.driver_spec(), "phase": phase, "concurrency": concurrency,
            "duration": duration}  # fmt: skip
    process = _driver(spec)
    assert process.stdout is not None and process.stdin is not None
    ready = process.stdout.readline().strip()
    if ready != "ready":
        process.kill()
        _, errors = process.communicate(timeout=10)
        raise RuntimeError(f"the load driver did not start:\n{ready}\n{errors[-3000:]}")
    cpu = server.cpu_ms()
    redis_cpu = process_tree_cpu_ms(server.redis.process.pid)
    commands = server.redis.command_calls()
    process.stdin.write("go\n")
    process.stdin.flush()
    # Bounded: the driver stops by itself after `duration`; this only guards against a hang.
    result = _last_line(process, timeout=duration + 120)
    cpu = server.cpu_ms() - cpu
    redis_cpu = process_tree_cpu_ms(server.redis.process.pid) - redis_cpu
    commands = server.redis.command_calls() - commands
    return PhaseResult(
        server=server.name,
        phase=phase,
        concurrency=concurrency,
        completed=result["completed"],
        errors=result["errors"],
        error_samples=result["errorSamples"],
        seconds=result["seconds"],
        per_second=result["perSecond"],
        p50_ms=result["p50"],
        p99_ms=result["p99"],
        exchanges_per_sign_in=result["exchangesPerSignIn"],
        server_cpu_ms=cpu,
        redis_cpu_ms=redis_cpu,
        redis_commands=commands,
        driver_cpu_ms=result["driverCpuMs"],
    )


@dataclass(frozen=True)
class PendingFlow:
    server: str
    keys: int
    bytes: int
    key_kinds: list[str]
    exchanges: int


def measure_pending_flow(server: ServerUnderTest) -> PendingFlow:
    """Redis bytes of one sign-in that waits for the user (MEMORY USAGE of the keys it
    added). Run after the load phases, so that keys shared by all flows (rate counters of
    the current window) already exist and are not charged to this one."""
    before = server.redis.keys()
    spec = {**server.driver_spec(), **server.pending, "phase": "pending", "concurrency": 1,
            "duration": 0}  # fmt: skip
    result = _last_line(_driver(spec), timeout=60)
    added = server.redis.keys() - before
    kinds = sorted({_kind(key) for key in added})
    return PendingFlow(
        server.name, len(added), server.redis.memory_usage(added), kinds, result["exchanges"]
    )


def _kind(key: str) -> str:
    """A key without its ids: ``oidc-link:v1:flow:abc`` -> ``oidc-link:v1:flow:…``."""
    head, _, _ = key.rpartition(":")
    return head + ":…" if head else key
