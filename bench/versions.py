"""``python -m bench.versions OLD_REV NEW_REV``: one oidc-link revision against another.

Builds each git revision into a venv of its own, serves both as bench.run serves oidc-link,
and runs bench.run's sign-in phase against one and then the other, round after round (the
order flips each round), printing the median of the per-round ratios new / old.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.phases import PhaseResult, run_phase
from bench.processes import BENCH_LIMITS, ServerUnderTest, oidc_link_config, start_oidc_link
from bench.run import environment, median_table, print_progress, round_metrics

REPOSITORY = Path(__file__).resolve().parent.parent
# Limit names older revisions count by, raised like BENCH_LIMITS where a revision knows them:
# 868ada5 limited SMS per phone number (5 an hour by default), which issue 14 removed.
RETIRED_LIMITS = {"sms_per_phone": 1_000_000_000}
# A problem check-config reports for one [limits] key: "FILE: limits.NAME: why".
LIMIT_PROBLEM = re.compile(r": limits\.(\w+): ")
MAX_USERS = 256


@dataclass(frozen=True)
class Version:
    """One revision, built: the command that runs its CLI and the limits its config sets."""

    role: str  # "old" or "new"
    revision: str  # as given on the command line
    commit: str
    oidc_link: tuple[str, ...]
    limits: Mapping[str, int]

    @property
    def name(self) -> str:
        return f"{self.role} {self.commit[:7]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__)
    parser.add_argument("old", metavar="OLD_REV", help="git revision measured against")
    parser.add_argument("new", metavar="NEW_REV", help="git revision measured")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (1-50, default 5)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument(
        "--users", type=concurrencies, default=(1, 8, 32), help="sign-in concurrencies: 1,8,32"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    parser.add_argument("--json", type=Path, help="also write every raw result here")
    args = parser.parse_args(argv)
    args.rounds = max(1, min(args.rounds, 50))
    args.duration = max(0.5, min(args.duration, 120.0))
    if shutil.which("node") is None:
        print("Cannot run the load driver: node is not installed", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="oidc-link-versions-") as temporary:
        workdir = Path(temporary)
        try:
            versions = build_versions(args.old, args.new, workdir)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"Cannot build the revisions: {error}", file=sys.stderr)
            return 2
        results, commands = measure(versions, args, workdir)
    print(build_report(results, versions, commands, args, argv))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "environment": environment(),
                    "versions": [{**asdict(v), "name": v.name} for v in versions],
                    "results": [{"round": n, **asdict(r)} for n, r in results],
                },
                indent=2,
            )
        )
    return 1 if any(r.errors for _, r in results) else 0


def concurrencies(text: str) -> tuple[int, ...]:
    """``--users 1,8,32``: concurrent users of each sign-in phase."""
    try:
        users = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not users or any(not 1 <= n <= MAX_USERS for n in users):
        raise argparse.ArgumentTypeError(f"each must be 1 to {MAX_USERS}: {text!r}")
    return users


def build_versions(old: str, new: str, workdir: Path) -> list[Version]:
    """Both revisions built and configured; one build when both name the same commit."""
    built: dict[str, tuple[tuple[str, ...], Mapping[str, int]]] = {}
    versions = []
    for role, revision in (("old", old), ("new", new)):
        commit = resolve(revision)
        if commit not in built:
            oidc_link = build(commit, workdir / commit[:12])
            built[commit] = (oidc_link, accepted_limits(oidc_link, workdir / commit[:12]))
        oidc_link, limits = built[commit]
        versions.append(Version(role, revision, commit, oidc_link, limits))
    return versions


def resolve(revision: str) -> str:
    answer = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--verify", "--quiet",
         f"{revision}^{{commit}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if answer.returncode != 0:
        raise RuntimeError(f"{revision!r} is not a commit of {REPOSITORY}")
    return answer.stdout.strip()


def build(commit: str, directory: Path) -> tuple[str, ...]:
    """``git archive`` of ``commit`` installed (``pip install .``) into a venv of its own;
    returns the command that runs that version's CLI."""
    source, venv = directory / "source", directory / "venv"
    source.mkdir(parents=True)
    archive = directory / "source.tar"
    _run(["git", "-C", str(REPOSITORY), "archive", "--format=tar", "-o", str(archive), commit])
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)], timeout=900)
    return (str(venv / "bin" / "oidc-link"),)


def accepted_limits(oidc_link: Sequence[str], workdir: Path) -> dict[str, int]:
    """The benchmark's raised limits that this version knows: ``check-config`` names every
    [limits] key it refuses (unknown, or removed), and those are left out."""
    limits = {**BENCH_LIMITS, **RETIRED_LIMITS}
    config = workdir / "check.toml"
    for attempt in range(2):
        config.write_text(oidc_link_config("http://127.0.0.1:9", "redis://127.0.0.1:9/0", limits))
        answer = subprocess.run(
            [*oidc_link, "check-config", "--production", "--allow-sandbox", str(config)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if answer.returncode == 0:
            return limits
        refused = set(LIMIT_PROBLEM.findall(answer.stdout))
        if attempt or not refused:
            break
        limits = {name: value for name, value in limits.items() if name not in refused}
    raise RuntimeError(
        f"{oidc_link[0]} refuses the benchmark's configuration:\n{answer.stdout}{answer.stderr}"
    )


def measure(
    versions: list[Version], args: argparse.Namespace, workdir: Path
) -> tuple[list[tuple[int, PhaseResult]], list[str]]:
    """Both servers up at once; each round runs every sign-in phase against one, then the
    other, the order flipping every round (this machine drifts within the hour)."""
    servers: list[ServerUnderTest] = []
    results: list[tuple[int, PhaseResult]] = []
    commands: list[str] = []
    try:
        for version in versions:
            directory = workdir / version.role
            directory.mkdir()
            server = start_oidc_link(
                directory, args.workers, oidc_link=version.oidc_link, limits=version.limits
            )
            server.name = version.name
            servers.append(server)
            commands.append(f"{server.name}: {server.command}")
            for note in server.notes:
                print(f"note: {server.name}: {note}")
        for server in servers:
            # Warm-up, not recorded: imports, connection pools, first key loads.
            run_phase(server, "signin", 8, min(2.0, args.duration))
        for round_number in range(args.rounds):
            order = servers if round_number % 2 == 0 else servers[::-1]
            for server in order:
                for users in args.users:
                    result = run_phase(server, "signin", users, args.duration)
                    results.append((round_number, result))
                    print_progress(round_number, result)
    finally:
        for server in servers:
            server.stop()
    return results, commands


def version_metrics(phases: list[PhaseResult]) -> dict[str, float]:
    """bench.run's figures for one server in one round, plus server CPU per sign-in of each
    concurrency (after that concurrency's latencies)."""
    per_phase = {
        p.concurrency: p.server_cpu_ms / p.completed
        for p in phases
        if p.phase == "signin" and p.completed
    }
    metrics: dict[str, float] = {}
    for name, value in round_metrics(phases).items():
        metrics[name] = value
        if name.startswith("p99 ms @") and (users := int(name.rpartition("@")[2])) in per_phase:
            metrics[f"server CPU ms / sign-in @{users}"] = per_phase[users]
    return metrics


def build_report(
    results: list[tuple[int, PhaseResult]],
    versions: list[Version],
    commands: list[str],
    args: argparse.Namespace,
    argv: list[str] | None,
) -> str:
    by_round: dict[tuple[str, int], list[PhaseResult]] = {}
    for round_number, result in results:
        by_round.setdefault((result.server, round_number), []).append(result)
    per_round = {key: version_metrics(phases) for key, phases in by_round.items()}
    old, new = versions
    machine = environment()
    bench_tool = machine.pop("oidc-link")
    machine.pop("oidc-provider")
    errors = sum(r.errors for _, r in results)
    return "\n".join(
        [
            "",
            f"# oidc-link {new.name} against {old.name}, {args.rounds} round(s) of "
            f"{args.duration:g} s sign-in phases",
            "",
            *(f"- {key}: {value}" for key, value in machine.items()),
            f"- bench tool: {bench_tool}",
            *(f"- {v.role}: {v.revision} = {v.commit}" for v in versions),
            *(f"- {v.role}'s [limits]: {', '.join(v.limits)}" for v in versions),
            "- command: python -m bench.versions "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            *(f"- started: {command} (its own redis-server)" for command in commands),
            "",
            "Medians over rounds; the ratio is the median of the per-round ratios new / old "
            "(above 1: more flows/s, or more latency and CPU).",
            "",
            *median_table(per_round, [new.name, old.name], args.rounds),
            "",
            f"Errors: {errors}" + (" (see the progress lines)" if errors else ""),
        ]
    )


def _run(command: list[str], timeout: float = 120) -> None:
    answer = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
    if answer.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{(answer.stdout + answer.stderr)[-3000:]}"
        )


if __name__ == "__main__":
    sys.exit(main())
