"""How a run of the whole suite splits across pytest-xdist's workers (pyproject's addopts say
``-n auto --dist loadfile``): how many workers, and which tests go to a worker together.
A run of named files or tests stays in one process, which starts sooner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

# Most of the suite's time is spent waiting (on sockets, redis-server, Redis Cluster and
# Sentinel, granian, Node and Chromium), not computing: a third worker on CI's 2 cores
# keeps both busy while one waits.
WORKERS = 3

# The modules that take longest alone (docs/performance.md "Issue 16, session 25: the
# suite's time"), started first so that none of them is left running alone at the end; the
# rest follow, those with more tests first. A stale list costs time, never a test.
SLOW_FIRST = (
    "tests/test_bench_smoke.py",
    "tests/test_keys.py",
    "tests/test_client.py",
    "tests/test_limits.py",
    "tests/test_par.py",
    "tests/test_browser.py",
    "tests/test_private_key_jwt.py",
    "tests/test_hosted_pages.py",
    "tests/test_serve.py",
    "tests/test_cluster_failover.py",
    "tests/test_demo.py",
)

# Modules whose tests go to workers one parameter at a time rather than as one file: the
# accessibility walks, one language each (each language's tests share only its own walk).
SPLIT_BY_PARAMETER = ("tests/test_accessibility_browser.py",)


def worker_count(config: pytest.Config) -> int:
    """WORKERS for a run of a folder (``pytest``, ``pytest tests``); none for a run of named
    files or tests. PYTEST_XDIST_AUTO_NUM_WORKERS, as pytest-xdist reads it, or ``-n N``
    on the command line, decide instead."""
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if chosen:
        return int(chosen)
    here = config.invocation_params.dir
    named = [here / argument.split("::", 1)[0] for argument in config.args]
    if named and all(Path(path).is_file() for path in named):
        return 0
    return WORKERS


class SuiteScheduling(LoadFileScheduling):
    """pytest-xdist's ``loadfile`` (a file's tests run in one worker, in order, sharing its
    module fixtures), with the slow files handed out first and the accessibility walks one
    language at a time."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self._ordered = False

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path in SPLIT_BY_PARAMETER and nodeid.endswith("]"):
            # The test's parameters are its language, for the walks and the sign-ins alike.
            return f"{path}[{nodeid.split('[', 1)[1]}"
        return path

    def _assign_work_unit(self, node: WorkerController) -> None:
        # The queue is complete by the first hand-out: ordered then, once.
        if not self._ordered:
            self._ordered = True
            rank = {path: index for index, path in enumerate(SLOW_FIRST)}
            queued = sorted(
                self.workqueue.items(),
                key=lambda unit: rank.get(unit[0].split("[", 1)[0], len(rank)),
            )
            self.workqueue.clear()
            self.workqueue.update(queued)
        super()._assign_work_unit(node)
