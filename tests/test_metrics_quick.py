"""The metrics' quick recorders (metrics.py ``_QuickCounter``, ``_QuickHistogram``) write
what prometheus_client's own ``inc()`` and ``observe()`` write: the same samples on the
registry, and the same values in the multi-process mode's files, on many amounts, edge
cases included (the bounds themselves, either side of them, 0, negatives, infinities, NaN,
integers)."""

from __future__ import annotations

import math
import multiprocessing
import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess

from oidc_link.metrics import LINK_BUCKETS, Metrics


def amounts(bounds: tuple[float, ...], count: int = 3_000) -> list[object]:
    """Amounts a histogram with ``bounds`` may be given: each bound, the floats either side
    of it, the edge cases, and random durations across the range and beyond it."""
    picked: list[object] = [0.0, -0.0, -1.0, math.inf, -math.inf, math.nan, 0, 1, 7, True]
    for bound in bounds:
        picked += [bound, math.nextafter(bound, -math.inf), math.nextafter(bound, math.inf)]
    rng = random.Random(16)  # noqa: S311 - repeatable test input, no secret
    picked += [rng.uniform(0.0, bounds[-1] * 1.5) for _ in range(count)]
    picked += [rng.expovariate(200.0) for _ in range(count)]  # mostly a few milliseconds
    return picked


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but the series' creation times, NaN written as its text (NaN != NaN)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): (
            "nan" if math.isnan(sample.value) else sample.value
        )
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def record(metrics: Metrics, quick: bool, picked: list[object]) -> None:
    """The same observations through the recorders (quick) or the library's children."""
    for index, amount in enumerate(picked):
        status = (200, 302, 404)[index % 3]
        if quick:
            metrics.http_request("protocol.token", "POST", status, amount)  # type: ignore[arg-type]
            metrics.link_call("lookup", "ok", amount)  # type: ignore[arg-type]
            metrics.sign_in_started("shop")
            metrics.token_issued("refresh_token", "shop")
        else:
            metrics._http.labels("protocol.token", "POST", status).observe(amount)
            metrics._link.labels("lookup", "ok").observe(amount)
            metrics._started.labels("shop").inc()
            metrics._tokens.labels("refresh_token", "shop").inc()


def test_the_quick_recorders_write_what_the_librarys_own_write() -> None:
    by_library = Metrics(CollectorRegistry(), ["shop"])
    quickly = Metrics(CollectorRegistry(), ["shop"])
    default_bounds = tuple(by_library._http._upper_bounds)
    picked = amounts(default_bounds) + amounts(LINK_BUCKETS)

    record(by_library, False, picked)
    record(quickly, True, picked)

    expected = samples(by_library.registry)
    assert samples(quickly.registry) == expected
    assert expected[
        ("oidc_link_http_request_duration_seconds_count",
         (("endpoint", "protocol.token"), ("method", "POST"), ("status", "200")))
    ] > 1_000  # fmt: skip


def test_the_quick_recorders_are_used_for_bound_counters_and_histograms() -> None:
    metrics = Metrics(CollectorRegistry(), ["shop"])
    metrics.http_request("protocol.token", "POST", 200, 0.001)
    metrics.sign_in_started("shop")

    assert type(metrics._http_by["protocol.token", "POST", 200]).__name__ == "_QuickHistogram"
    assert type(metrics._started_by[("shop",)]).__name__ == "_QuickCounter"


def record_in_a_worker(directory: str, quick: bool) -> None:
    """Runs in a spawned process whose environment names ``directory``: multi-process mode."""
    metrics = Metrics(CollectorRegistry(), ["shop"])
    picked = amounts(tuple(metrics._http._upper_bounds), 300) + amounts(LINK_BUCKETS, 300)
    record(metrics, quick, [amount for amount in picked if amount == amount])  # not NaN
    record(metrics, quick, [math.nan])


def collected(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return samples(registry)


def test_in_multi_process_mode_the_files_hold_what_the_librarys_own_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawn = multiprocessing.get_context("spawn")
    written = {}
    for quick in (False, True):
        directory = tmp_path / ("quick" if quick else "library")
        directory.mkdir()
        # Spawned processes inherit this environment; prometheus-client reads it on import.
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
        worker = spawn.Process(target=record_in_a_worker, args=(str(directory), quick))
        worker.start()
        worker.join(timeout=120)
        assert worker.exitcode == 0
        written[quick] = collected(directory)

    assert written[True] == written[False]
    assert any(name.endswith("_bucket") for name, _ in written[True])
