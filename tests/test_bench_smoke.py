"""The benchmark's quick mode: its load driver really completes sign-ins (every page, the
token exchange, the ID-token check) on a real redis-server against oidc-link's own server,
and against the forms peer (node-oidc-provider with the same two forms) where bench/node's
packages are installed (``npm ci`` there, as .ci/run does; else that test skips). No timing
is asserted."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.processes import node_ready
from bench.run import rotated
from tests.conftest import REQUIRE_REAL_REDIS

ROOT = Path(__file__).resolve().parent.parent
# CI installs Node for the interop tests and requires it there; the driver needs no npm ci.
REQUIRED = {
    "redis-server": REQUIRE_REAL_REDIS,
    "node": os.environ.get("OIDC_LINK_TEST_INTEROP") == "required",
}


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        if REQUIRED[binary]:
            pytest.fail(f"{binary} is required for the benchmark smoke test in CI")
        pytest.skip(f"{binary} is not installed")


def test_quick_benchmark_completes_sign_ins_without_errors(tmp_path: Path) -> None:
    _require("redis-server")
    _require("node")
    results_file = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "oidc-link",
         "--duration", "1", "--json", str(results_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(results_file.read_text())["results"]
    sign_ins = [r for r in results if r["phase"] == "signin"]
    assert [r["concurrency"] for r in sign_ins] == [1, 8, 32]
    for phase in results:
        assert phase["errors"] == 0, phase["error_samples"]
        assert phase["completed"] > 0, phase
    # authorize -> email page -> email -> code page -> code (redirect to the RP) -> token
    assert all(r["exchanges_per_sign_in"] >= 4 for r in sign_ins)
    assert all(r["redis_commands"] > 0 and r["server_cpu_ms"] > 0 for r in sign_ins)
    assert "flows/s @32" in run.stdout


def test_quick_benchmark_signs_in_through_the_forms_peers_email_and_code_forms(
    tmp_path: Path,
) -> None:
    _require("redis-server")
    _require("node")
    if problem := node_ready():
        pytest.skip(problem)
    results_file = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "forms-peer",
         "--duration", "1", "--json", str(results_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recorded = json.loads(results_file.read_text())
    for phase in recorded["results"]:
        assert phase["server"] == "forms-peer"
        assert phase["errors"] == 0, phase["error_samples"]
        assert phase["completed"] > 0, phase
    # authorize -> email form, its POST -> code form, its POST -> resume -> RP, token: the
    # driver fails any sign-in that did not fill the email form and then the code form.
    sign_ins = [r for r in recorded["results"] if r["phase"] == "signin"]
    assert [r["exchanges_per_sign_in"] for r in sign_ins] == [7, 7, 7]
    # A pending sign-in waits at the code form, its verification kept in the interaction.
    (pending,) = recorded["pending_flows"]
    assert pending["exchanges"] == 4
    assert pending["key_kinds"] == ["peer:Interaction:…"]
    assert "| figure | forms-peer |" in run.stdout


def test_each_round_starts_one_server_later_so_every_server_takes_every_place() -> None:
    servers = ["oidc-link", "auto-peer", "forms-peer"]
    orders = [rotated(servers, n) for n in range(4)]
    assert orders[0] == servers
    assert orders[1] == ["auto-peer", "forms-peer", "oidc-link"]
    assert orders[3] == orders[0]
    for place in range(3):
        assert sorted(order[place] for order in orders[:3]) == sorted(servers)


def test_the_server_floor_benchmark_serves_its_documents_under_each_server() -> None:
    _require("node")
    run = subprocess.run(
        [sys.executable, "-m", "bench.server_floor", "--rounds", "1", "--seconds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    medians = [line.split() for line in run.stdout.splitlines() if line.startswith("median")]
    # gunicorn only where the bench extra is installed; granian and Node always.
    servers = {" ".join(fields[1:-6]) for fields in medians}
    assert {"granian", "node http"} <= servers
    assert all(float(fields[-6]) > 0 for fields in medians)


def test_the_version_benchmark_builds_a_revision_and_signs_in_against_it_as_old_and_new(
    tmp_path: Path,
) -> None:
    """One build (both sides are HEAD), served twice: each side completes sign-ins at every
    concurrency of the round, and its configuration keeps only the limits HEAD knows."""
    _require("redis-server")
    _require("node")
    results_file = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.versions", "HEAD", "HEAD", "--rounds", "1",
         "--duration", "1", "--users", "1,8", "--json", str(results_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recorded = json.loads(results_file.read_text())
    old, new = recorded["versions"]
    assert (old["role"], new["role"]) == ("old", "new")
    assert old["commit"] == new["commit"]
    # sms_per_phone is offered for older revisions; HEAD refuses it as removed.
    assert "sms_per_phone" not in new["limits"]
    assert new["limits"]["sms_per_email_ceiling"] >= 1_000_000
    phases = [(r["server"], r["concurrency"]) for r in recorded["results"]]
    assert sorted(phases) == sorted(
        (side["name"], users) for side in (old, new) for users in (1, 8)
    )
    for phase in recorded["results"]:
        assert phase["errors"] == 0, phase["error_samples"]
        assert phase["completed"] > 0 and phase["server_cpu_ms"] > 0, phase
    assert "| server CPU ms / sign-in @8 |" in run.stdout
    assert f"| figure | {new['name']} | {old['name']} | ratio |" in run.stdout


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["HEAD", "HEAD", "--users", "0"], "each must be 1 to 256"),
        (["HEAD", "HEAD", "--users", "1,x"], "not a list of numbers"),
        (["no-such-revision-here", "HEAD"], "'no-such-revision-here' is not a commit"),
    ],
)
def test_the_version_benchmark_refuses_bad_arguments_with_a_message(
    arguments: list[str], complaint: str
) -> None:
    _require("node")
    run = subprocess.run(
        [sys.executable, "-m", "bench.versions", *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert complaint in run.stderr
    assert "Traceback" not in run.stderr


def test_the_in_process_benchmark_prints_a_budget_row_per_step_and_the_logs_share() -> None:
    """A few sign-ins, one round: every exchange of a sign-in and the refresh grant gets a
    row with positive figures and a verdict, then the overheads and the log and metrics
    lines. No figure is compared with a budget: that is the benchmark's job, not CI's."""
    _require("redis-server")
    run = subprocess.run(
        [sys.executable, "-m", "bench.in_process", "--count", "10", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {
        cells[0]: cells[1:]
        for line in run.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| step ")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    steps = ["authorize page", "email POST", "code page", "code POST", "token"]
    assert list(rows) == [*steps, "sign-in (5 exchanges)", "refresh grant"]
    for name, (budget, floor, today, verdict) in rows.items():
        assert 0 < float(floor) < float(budget), name
        assert float(today) > 0, name
        assert re.fullmatch(r"(over|under) by \d+\.\d\d", verdict), verdict
    assert float(rows["sign-in (5 exchanges)"][0]) == 3.0
    assert sum(float(rows[step][0]) for step in steps) == pytest.approx(3.0, abs=0.03)
    assert "test client's own cost, subtracted: GET " in run.stdout
    assert "granian per request, added: 0.076 ms" in run.stdout
    for part in ("JSON request log", "metrics"):
        assert re.search(rf"^{part}: -?\d+\.\d+ ms per sign-in, -?\d+\.\d % of the budget$",
                         run.stdout, re.MULTILINE), part  # fmt: skip
