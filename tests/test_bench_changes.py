"""bench/changes.py (issue 16 item 6, "what each change bought"): a row per change with the
medians of its rounds and of the per-round ratios against its parent, and bad arguments
refused with a message. (The end-to-end build and serve is bench.versions', smoke-tested in
test_bench_smoke.py.)"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bench.changes import Change, report
from bench.phases import PhaseResult

ROOT = Path(__file__).resolve().parent.parent


def phase(cpu_ms_per_sign_in: float, per_second: float) -> PhaseResult:
    return PhaseResult(
        server="x", phase="signin", concurrency=8, completed=100, errors=0, error_samples=[],
        seconds=1.0, per_second=per_second, p50_ms=1.0, p99_ms=2.0, exchanges_per_sign_in=7,
        server_cpu_ms=cpu_ms_per_sign_in * 100, redis_cpu_ms=0.0, redis_commands=0,
        driver_cpu_ms=0.0,
    )  # fmt: skip


def test_each_change_gets_a_row_of_medians_and_of_per_round_ratios() -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD", "HEAD^"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    change = Change("HEAD", parent=head[1], commit=head[0])
    rounds = [(phase(8.0, 100), phase(6.0, 120)), (phase(10.0, 80), phase(8.0, 100)),
              (phase(9.0, 90), phase(9.0, 90))]  # fmt: skip
    arguments = argparse.Namespace(rounds=3, duration=4.0, users=8)

    printed = report([change], {change.commit: rounds}, arguments)

    row = next(line for line in printed.splitlines() if line.startswith(f"| {head[0][:7]} "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # CPU 9.00 -> 8.00 (medians), ratio median of 0.75, 0.8, 1.0; rate 90 -> 100, ratio 1.2,
    # 1.25, 1.0 -> 1.2.
    assert cells[1:8] == [head[1][:7], "9.00", "8.00", "0.800", "90.0", "100.0", "1.200"]
    assert "Errors: 0" in printed


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["no-such-revision-here"], "'no-such-revision-here^' is not a commit"),
        (["HEAD"] * 9, "At most 8 changes"),
        (["HEAD", "--users", "0"], "--users must be 1 to 64"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(arguments: list[str], complaint: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.changes", *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert run.returncode == 2
    assert complaint in run.stderr
    assert "Traceback" not in run.stderr
