"""``python -m bench.changes REV [REV ...]``: what each change bought, in one interleaved run.

Each REV is measured against its first parent (``REV^``: for a merge commit on main, what the
merge brought in). Every distinct commit is built once into a venv of its own and served as
bench.run serves oidc-link (bench/versions.py's build), all at once; then, round after
round, each change's parent and the change itself run a sign-in phase back to back (which
goes first flips every round, and the changes take turns in a rotating order), so that the
machine's drift within the run favours neither side. Prints one row per change: server CPU
per sign-in and sign-ins per second before and after, and the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.phases import PhaseResult, run_phase
from bench.processes import ServerUnderTest, start_oidc_link
from bench.run import environment
from bench.versions import REPOSITORY, accepted_limits, build, resolve

MAX_CHANGES = 8


@dataclass(frozen=True)
class Change:
    revision: str  # as given on the command line
    parent: str
    commit: str

    @property
    def subject(self) -> str:
        answer = subprocess.run(
            ["git", "-C", str(REPOSITORY), "log", "-1", "--format=%s", self.commit],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return answer.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.changes", description=__doc__)
    parser.add_argument("revisions", nargs="+", metavar="REV", help="changes, each vs REV^")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (1-20, default 3)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per phase")
    parser.add_argument("--users", type=int, default=8, help="concurrent sign-ins (1-64)")
    parser.add_argument("--workers", type=int, default=2, help="processes per server")
    args = parser.parse_args(argv)
    if len(args.revisions) > MAX_CHANGES:
        print(f"At most {MAX_CHANGES} changes per run (one server each)", file=sys.stderr)
        return 2
    if not 1 <= args.users <= 64:
        print("--users must be 1 to 64", file=sys.stderr)
        return 2
    args.rounds = max(1, min(args.rounds, 20))
    args.duration = max(0.5, min(args.duration, 60.0))
    try:
        changes = [Change(rev, resolve(f"{rev}^"), resolve(rev)) for rev in args.revisions]
    except RuntimeError as error:
        print(f"Cannot measure: {error}", file=sys.stderr)
        return 2
    if shutil.which("node") is None:
        print("Cannot run the load driver: node is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="oidc-link-changes-") as temporary:
        workdir = Path(temporary)
        servers: dict[str, ServerUnderTest] = {}
        try:
            commits = dict.fromkeys(c for change in changes for c in (change.parent, change.commit))
            for commit in commits:
                directory = workdir / commit[:12]
                oidc_link = build(commit, directory)
                limits = accepted_limits(oidc_link, directory)
                server = start_oidc_link(
                    directory, args.workers, oidc_link=oidc_link, limits=limits
                )
                server.name = commit[:7]
                servers[commit] = server
                run_phase(server, "signin", args.users, min(2.0, args.duration))  # warm-up
            results = measure(changes, servers, args)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"Cannot measure: {error}", file=sys.stderr)
            return 2
        finally:
            for server in servers.values():
                server.stop()
    print(report(changes, results, args))
    return 1 if any(r.errors for pairs in results.values() for pair in pairs for r in pair) else 0


def measure(
    changes: list[Change], servers: dict[str, ServerUnderTest], args: argparse.Namespace
) -> dict[str, list[tuple[PhaseResult, PhaseResult]]]:
    """(parent's, change's) sign-in phase of each round, by change commit."""
    results: dict[str, list[tuple[PhaseResult, PhaseResult]]] = {c.commit: [] for c in changes}
    for round_number in range(args.rounds):
        shift = round_number % len(changes)
        for change in changes[shift:] + changes[:shift]:
            sides = [change.parent, change.commit]
            if round_number % 2:
                sides.reverse()
            measured = {
                side: run_phase(servers[side], "signin", args.users, args.duration)
                for side in sides
            }
            pair = (measured[change.parent], measured[change.commit])
            results[change.commit].append(pair)
            print(
                f"round {round_number + 1}: {change.commit[:7]} "
                f"{_cpu(pair[0]):.2f} -> {_cpu(pair[1]):.2f} ms CPU per sign-in",
                file=sys.stderr,
            )
    return results


def _cpu(result: PhaseResult) -> float:
    return result.server_cpu_per_operation or float("nan")


def report(
    changes: list[Change],
    results: dict[str, list[tuple[PhaseResult, PhaseResult]]],
    args: argparse.Namespace,
) -> str:
    machine = environment()
    machine["bench tool"] = machine.pop("oidc-link")
    machine.pop("oidc-provider")
    lines = [
        f"# What each change bought: {args.rounds} round(s) of {args.duration:g} s sign-in "
        f"phases at {args.users} users, each change against its parent, back to back",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
        "Medians over rounds; ratios are medians of per-round ratios change / parent.",
        "",
        "| change | parent | CPU ms / sign-in, parent | change | ratio "
        "| sign-ins/s, parent | change | ratio | subject |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for change in changes:
        pairs = results[change.commit]
        before = statistics.median(_cpu(old) for old, _ in pairs)
        after = statistics.median(_cpu(new) for _, new in pairs)
        cpu_ratio = statistics.median(_cpu(new) / _cpu(old) for old, new in pairs)
        rate_before = statistics.median(old.per_second for old, _ in pairs)
        rate_after = statistics.median(new.per_second for _, new in pairs)
        rate_ratio = statistics.median(
            new.per_second / old.per_second if old.per_second else float("nan")
            for old, new in pairs
        )
        lines.append(
            f"| {change.commit[:7]} | {change.parent[:7]} | {before:.2f} | {after:.2f} "
            f"| {cpu_ratio:.3f} | {rate_before:.1f} | {rate_after:.1f} | {rate_ratio:.3f} "
            f"| {change.subject[:70]} |"
        )
    errors = sum(r.errors for pairs in results.values() for pair in pairs for r in pair)
    lines += ["", f"Errors: {errors}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
