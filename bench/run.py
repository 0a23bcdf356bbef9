"""``python -m bench.run``: oidc-link against two node-oidc-provider peers, interleaved.

Starts a redis-server per server, oidc-link with its production server and two peers (Node
cluster): the automatic peer, which signs in with no form, and the forms peer, with the same
email and code forms as oidc-link. All run ``--workers`` processes. It warms each up, then
runs every phase against each server in turn, round after round, the order rotating each
round, and prints the medians and the median of the per-round ratios oidc-link / each peer.
Loopback only; each phase is bounded by its duration, the whole run by rounds x phases.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from bench.phases import PendingFlow, PhaseResult, measure_pending_flow, run_phase
from bench.processes import (
    AUTOMATIC_PEER,
    FORMS_PEER,
    ServerUnderTest,
    node_ready,
    peer_version,
    start_oidc_link,
    start_peer,
)

OIDC_LINK = "oidc-link"
SERVERS = (OIDC_LINK, AUTOMATIC_PEER.name, FORMS_PEER.name)
# --only's earlier name for the automatic peer, from when it was the only one.
ONLY_ALIASES = {"peer": AUTOMATIC_PEER.name}
SIGN_IN_CONCURRENCY = (1, 8, 32)
ENDPOINTS = ("refresh", "discovery", "jwks")
# Issue 16 item 2: the ratios oidc-link / forms peer to reach (higher is better unless
# noted). Against the automatic peer the same figures are reported, without targets.
TARGETS = {
    "flows/s @32": 1.5,
    "p99 ms @32": 1.0,  # at most
    "server CPU ms / sign-in": 0.67,  # at most
    "refresh/s": 1.5,
    "discovery/s": 1.0,
    "jwks/s": 1.0,
}
LOWER_IS_BETTER = {"server CPU ms / sign-in", "p99 ms @32"}
Item = TypeVar("Item")


@dataclass(frozen=True)
class Ratio:
    """A column of per-round ratios numerator / denominator, with targets to meet if given."""

    label: str
    numerator: str
    denominator: str
    targets: Mapping[str, float] | None = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every phase (>= 1)")
    parser.add_argument("--duration", type=float, help="seconds per phase (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round, 2 s phases")
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    parser.add_argument(
        "--endpoint-users", type=int, default=16, help="concurrent users for refresh/discovery/jwks"
    )
    parser.add_argument(
        "--only", choices=(*SERVERS, *ONLY_ALIASES), help="run one server only ('peer': auto-peer)"
    )
    parser.add_argument("--json", type=Path, help="also write every raw result here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
    if args.duration is None:
        args.duration = 2.0 if args.quick else 5.0
    args.rounds = max(1, min(args.rounds, 50))
    args.duration = max(0.5, min(args.duration, 120.0))
    only = ONLY_ALIASES.get(args.only, args.only)
    if only != OIDC_LINK and (problem := node_ready()):
        print(f"Cannot run the peers: {problem}", file=sys.stderr)
        return 2

    results: list[tuple[int, PhaseResult]] = []
    pending: list[PendingFlow] = []
    commands: list[str] = []
    with tempfile.TemporaryDirectory(prefix="oidc-link-bench-") as temporary:
        workdir = Path(temporary)
        servers: list[ServerUnderTest] = []
        try:
            if only in (None, OIDC_LINK):
                servers.append(start_oidc_link(workdir, args.workers))
            for kind in (AUTOMATIC_PEER, FORMS_PEER):
                if only in (None, kind.name):
                    servers.append(start_peer(workdir, args.workers, kind))
            for server in servers:
                commands.append(server.command)
                for note in server.notes:
                    print(f"note: {server.name}: {note}")
                # Warm-up, not recorded: imports, JIT, connection pools, first key loads.
                run_phase(server, "signin", 8, min(2.0, args.duration))
            for round_number in range(args.rounds):
                for server in rotated(servers, round_number):
                    for phase_result in _one_round(server, args):
                        results.append((round_number, phase_result))
                        print_progress(round_number, phase_result)
            pending = [measure_pending_flow(server) for server in servers]
        finally:
            for server in servers:
                server.stop()

    report = build_report(results, pending, args, argv, commands)
    print(report)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "environment": environment(),
                    "results": [{"round": n, **asdict(r)} for n, r in results],
                    "pending_flows": [asdict(p) for p in pending],
                },
                indent=2,
            )
        )
    return 1 if any(r.errors for _, r in results) else 0


def rotated(servers: Sequence[Item], round_number: int) -> list[Item]:
    """This round's order: each round starts one server later, so that over as many rounds
    as servers each one runs first, second and last once (the machine drifts within a round)."""
    start = round_number % len(servers)
    return [*servers[start:], *servers[:start]]


def _one_round(server: ServerUnderTest, args: argparse.Namespace) -> list[PhaseResult]:
    phases = [run_phase(server, "signin", users, args.duration) for users in SIGN_IN_CONCURRENCY]
    phases += [run_phase(server, name, args.endpoint_users, args.duration) for name in ENDPOINTS]
    return phases


def print_progress(round_number: int, result: PhaseResult) -> None:
    errors = f", {result.errors} errors {result.error_samples}" if result.errors else ""
    print(
        f"round {round_number + 1} {result.server:19} {result.phase:9} x{result.concurrency:<3}"
        f" {result.per_second:8.1f}/s  p50 {_ms(result.p50_ms)}  p99 {_ms(result.p99_ms)}"
        f"  server {result.server_cpu_ms / result.seconds / 10:4.0f}% CPU"
        f"  driver {result.driver_cpu_ms / result.seconds / 10:4.0f}% CPU{errors}",
        flush=True,
    )


def _ms(value: float | None) -> str:
    return f"{value:7.1f} ms" if value is not None else "      -   "


def round_metrics(phases: list[PhaseResult]) -> dict[str, float]:
    """One server's figures in one round."""
    metrics: dict[str, float] = {}
    sign_ins = [p for p in phases if p.phase == "signin"]
    for phase in sign_ins:
        metrics[f"flows/s @{phase.concurrency}"] = phase.per_second
        if phase.p50_ms is not None and phase.p99_ms is not None:
            metrics[f"p50 ms @{phase.concurrency}"] = phase.p50_ms
            metrics[f"p99 ms @{phase.concurrency}"] = phase.p99_ms
    flows = sum(p.completed for p in sign_ins)
    if flows:
        metrics["server CPU ms / sign-in"] = sum(p.server_cpu_ms for p in sign_ins) / flows
        metrics["Redis CPU ms / sign-in"] = sum(p.redis_cpu_ms for p in sign_ins) / flows
        metrics["Redis commands / sign-in"] = sum(p.redis_commands for p in sign_ins) / flows
        exchanges = [p.exchanges_per_sign_in for p in sign_ins if p.exchanges_per_sign_in]
        if exchanges:
            metrics["HTTP exchanges / sign-in"] = statistics.mean(exchanges)
            metrics["server CPU ms / exchange"] = (
                metrics["server CPU ms / sign-in"] / metrics["HTTP exchanges / sign-in"]
            )
    for phase in phases:
        if phase.phase in ENDPOINTS:
            metrics[f"{phase.phase}/s"] = phase.per_second
            if phase.completed:
                metrics[f"server CPU ms / {phase.phase}"] = phase.server_cpu_ms / phase.completed
    seconds = sum(p.seconds for p in phases)
    metrics["driver CPU % of a core"] = sum(p.driver_cpu_ms for p in phases) / seconds / 10
    return metrics


def build_report(
    results: list[tuple[int, PhaseResult]],
    pending: list[PendingFlow],
    args: argparse.Namespace,
    argv: list[str] | None,
    commands: list[str],
) -> str:
    by_round: dict[tuple[str, int], list[PhaseResult]] = {}
    for round_number, result in results:
        by_round.setdefault((result.server, round_number), []).append(result)
    per_round = {key: round_metrics(phases) for key, phases in by_round.items()}
    servers = [name for name in SERVERS if any(k[0] == name for k in per_round)]
    targets = {FORMS_PEER.name: TARGETS}
    ratios = [
        Ratio(f"{OIDC_LINK} / {peer}", OIDC_LINK, peer, targets.get(peer))
        for peer in servers
        if peer != OIDC_LINK and OIDC_LINK in servers
    ]
    lines = [
        "",
        f"# oidc-link benchmark, {args.rounds} round(s) of {args.duration:g} s phases",
        "",
        *(f"- {key}: {value}" for key, value in environment().items()),
        f"- command: python -m bench.run {' '.join(argv if argv is not None else sys.argv[1:])}",
        *(f"- started: {command}" for command in commands),
        "",
        "Medians over rounds; a ratio is the median of the per-round ratios oidc-link / peer;"
        f" the targets (issue 16) are for oidc-link / {FORMS_PEER.name}.",
        "",
        *median_table(per_round, servers, args.rounds, ratios=ratios),
    ]
    lines += ["", "Redis per pending sign-in (waiting for the user):", ""]
    for flow in pending:
        lines.append(
            f"- {flow.server}: {flow.bytes} bytes in {flow.keys} key(s) "
            f"({', '.join(flow.key_kinds)}), after {flow.exchanges} HTTP exchange(s)"
        )
    errors = sum(r.errors for _, r in results)
    lines += ["", f"Errors: {errors}" + (" (see the progress lines)" if errors else "")]
    return "\n".join(lines)


def median_table(
    per_round: Mapping[tuple[str, int], Mapping[str, float]],
    servers: Sequence[str],
    rounds: int,
    *,
    ratios: Sequence[Ratio] | None = None,
) -> list[str]:
    """Markdown rows of each figure's median per server, then a column per ratio: the median
    of the per-round ratios (and its target, if the ratio has targets). Without ``ratios``,
    two servers get one column "ratio", first / second. Ratios only within a round: the
    machine drifts between rounds."""
    if ratios is None:
        ratios = [Ratio("ratio", *servers)] if len(servers) == 2 else []
    names = list(dict.fromkeys(name for m in per_round.values() for name in m))
    headings = [*servers]
    for ratio in ratios:
        headings += [ratio.label, *(["target"] if ratio.targets else [])]
    lines = ["| figure | " + " | ".join(headings) + " |", "|---|" + "---|" * len(headings)]
    for name in names:
        cells = []
        for server in servers:
            values = [m[name] for (s, _), m in per_round.items() if s == server and name in m]
            cells.append(_figure(statistics.median(values)) if values else "-")
        for ratio in ratios:
            value = _median_ratio(per_round, ratio, name, rounds)
            cells.append(f"{value:.2f}x" if value is not None else "-")
            if ratio.targets:
                cells.append(_target(name, value, ratio.targets))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _median_ratio(
    per_round: Mapping[tuple[str, int], Mapping[str, float]], ratio: Ratio, name: str, rounds: int
) -> float | None:
    values = [
        per_round[(ratio.numerator, n)][name] / per_round[(ratio.denominator, n)][name]
        for n in range(rounds)
        if name in per_round.get((ratio.numerator, n), {})
        and per_round.get((ratio.denominator, n), {}).get(name)
    ]
    return statistics.median(values) if values else None


def _figure(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.2f}"


def _target(name: str, ratio: float | None, targets: Mapping[str, float]) -> str:
    if name not in targets:
        return ""
    target = targets[name]
    if name in LOWER_IS_BETTER:
        met = ratio is not None and ratio <= target
        return f"<= {target:.2f}x {'met' if met else 'missed'}"
    met = ratio is not None and ratio >= target
    return f">= {target:.2f}x {'met' if met else 'missed'}"


def _version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    answer = subprocess.run(command, capture_output=True, text=True, check=False)
    return (answer.stdout or answer.stderr).strip().splitlines()[0]


def environment() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    repository = Path(__file__).resolve().parent.parent
    revision = _version(["git", "-C", str(repository), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(repository), "status", "--porcelain"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{_version(['nproc'])} CPU(s), {model}",
        "Python": platform.python_version(),
        "Node": _version(["node", "--version"]),
        "oidc-provider": peer_version() or "not installed",
        "redis-server": _version(["redis-server", "--version"]),
        "oidc-link": revision + (" with uncommitted changes" if dirty else ""),
    }


if __name__ == "__main__":
    sys.exit(main())
