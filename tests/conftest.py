"""Shared fixtures: a fixed clock, Redis (embedded, and real when a redis-server exists; a
real Redis Cluster and a real Sentinel-run Redis too for the modules that opt in with
``pytestmark = [ON_REDIS_CLUSTER, ON_REDIS_SENTINEL]``)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import fakeredis
import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.services import build_services
from oidc_link.store import Store, connect
from tests.fake_link_server import FakeLinkServer
from tests.parallel import SuiteScheduling, worker_count
from tests.redis_cluster import RunningCluster, running_cluster
from tests.redis_sentinel import RunningSentinels, running_sentinels
from tests.relying_party import Browser, RelyingParty

# CI sets this so that a missing redis-server fails the run instead of skipping tests.
REQUIRE_REAL_REDIS = os.environ.get("OIDC_LINK_TEST_REAL_REDIS") == "required"
# And this so that a missing redis-server or redis-cli fails the Redis Cluster's tests.
REQUIRE_CLUSTER = os.environ.get("OIDC_LINK_TEST_CLUSTER") == "required"
# And this so that a missing redis-server fails the Sentinel-run Redis's tests.
REQUIRE_SENTINEL = os.environ.get("OIDC_LINK_TEST_SENTINEL") == "required"

# The backends ``redis_client`` (and so ``store`` and ``app``) runs each test on. A module
# (or a test) marked ON_REDIS_CLUSTER runs on a real Redis Cluster as well, and one marked
# ON_REDIS_SENTINEL on a real primary found through Sentinels; a module whose tests do not
# all work there yet names those it leaves out of one:
# ``pytestmark = [ON_REDIS_CLUSTER(but_not={"test_name", ...}), ON_REDIS_SENTINEL]``.
REDIS_BACKENDS = ["fakeredis", "redis-server"]
ON_REDIS_CLUSTER = pytest.mark.redis_cluster
ON_REDIS_SENTINEL = pytest.mark.redis_sentinel
# Each opt-in marker, by name, and the backend it adds.
OPT_IN_BACKENDS = {"redis_cluster": "redis-cluster", "redis_sentinel": "redis-sentinel"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "redis_cluster: run the test on a real Redis Cluster too (redis_client)"
    )
    config.addinivalue_line(
        "markers", "redis_sentinel: run the test on a real Sentinel-run Redis too (redis_client)"
    )


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): workers for the whole suite, none for named files
    or tests (tests/parallel.py)."""
    return worker_count(config)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> SuiteScheduling | None:
    """``--dist loadfile`` (pyproject's addopts), with the slow files handed out first and
    the accessibility walks one language at a time; another ``--dist`` asked for is kept."""
    if config.getoption("dist") != "loadfile":
        return None
    return SuiteScheduling(config, log)  # type: ignore[arg-type]


@pytest.hookimpl(wrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Iterator[None]:
    """Tests marked ON_REDIS_CLUSTER or ON_REDIS_SENTINEL that use ``redis_client``,
    directly or through ``store`` or ``app``, get that backend beside the other two: as if
    they were parametrized so (a parametrize mark, which pytest prefers to the fixture's
    params)."""
    backends = list(REDIS_BACKENDS)
    for name, backend in OPT_IN_BACKENDS.items():
        marker = metafunc.definition.get_closest_marker(name)
        if marker is None:
            continue
        but_not = marker.kwargs.get("but_not", ())
        # A name left there after its test was renamed would leave nothing out, silently.
        unknown = sorted(test for test in but_not if not hasattr(metafunc.module, test))
        if unknown:
            raise pytest.UsageError(f"{name}(but_not=...) names no test here: {unknown}")
        if metafunc.function.__name__ not in but_not:
            backends.append(backend)
    if "redis_client" in metafunc.fixturenames and backends != REDIS_BACKENDS:
        metafunc.definition.add_marker(
            pytest.mark.parametrize("redis_client", backends, indirect=True)
        )
    return (yield)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    """The CLI under test installs oidc-link's masked log handler on the root logger; it
    must not stay for the tests after (its mask rewrites the records they inspect)."""
    root = logging.getLogger()
    handlers, level = set(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_oidc_link", False) and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A throwaway redis-server on a loopback port, for the whole test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_REAL_REDIS:
            pytest.fail("redis-server is required (OIDC_LINK_TEST_REAL_REDIS=required)")
        pytest.skip("redis-server is not installed; CI runs these against a real one")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def cluster_binaries() -> tuple[str, str]:
    """redis-server and redis-cli, to start a cluster with; skips (or, in CI, fails) the
    test that needs them when one is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        if REQUIRE_CLUSTER:
            pytest.fail("redis-server and redis-cli are required (OIDC_LINK_TEST_CLUSTER=required)")
        pytest.skip("redis-server or redis-cli is not installed; CI runs these on a cluster")
    return server, cli


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """A throwaway Redis Cluster (3 primaries, 3 replicas) on loopback, for the session."""
    server, cli = cluster_binaries()
    with running_cluster(server, cli, tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


def sentinel_binary() -> str:
    """redis-server, which runs the data servers and (``--sentinel``) the Sentinels; skips
    (or, in CI, fails) the test that needs it when it is missing."""
    server = shutil.which("redis-server")
    if server is None:
        if REQUIRE_SENTINEL:
            pytest.fail("redis-server is required (OIDC_LINK_TEST_SENTINEL=required)")
        pytest.skip("redis-server is not installed; CI runs these on Sentinels")
    return server


@pytest.fixture(scope="session")
def redis_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSentinels]:
    """A throwaway primary, replica and three Sentinels on loopback, for the session."""
    directory = tmp_path_factory.mktemp("redis-sentinel")
    with running_sentinels(sentinel_binary(), directory) as sentinels:
        yield sentinels


@pytest.fixture(params=REDIS_BACKENDS)
def redis_client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The same tests run on the embedded fakeredis and on a real redis-server (and on a
    real Redis Cluster or Sentinel-run Redis, where the module opts in), each emptied
    before and after."""
    if request.param == "fakeredis":
        yield fakeredis.FakeRedis(decode_responses=True)
        return
    if request.param == "redis-cluster":
        # Built as production builds it, from a redis+cluster:// URL.
        cluster = connect(request.getfixturevalue("redis_cluster").url)
        cluster.flushdb(target_nodes=cluster.PRIMARIES)
        yield cluster
        cluster.flushdb(target_nodes=cluster.PRIMARIES)
        cluster.close()
        return
    if request.param == "redis-sentinel":
        # Built as production builds it, from a redis+sentinel:// URL: it asks the Sentinels
        # for the primary.
        primary = connect(request.getfixturevalue("redis_sentinels").url)
        primary.flushdb()
        yield primary
        primary.flushdb()
        primary.close()
        return
    # Built as production builds it (its direct command, pipeline and script paths).
    client = connect(request.getfixturevalue("redis_server_url"))
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def embedded_redis() -> redis.Redis:
    """Embedded Redis only, for tests that are about behaviour rather than storage."""
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store(redis_client: redis.Redis, clock: FixedClock) -> Store:
    return Store(redis_client, clock)


ISSUER = "https://login.example.test"
SHOP_SECRET = "shop-secret-0123456789abcdef-0123456789"
POST_SECRET = "post-secret-0123456789abcdef-0123456789"
SHOP_CALLBACK = "https://shop.example.test/callback"
SPA_CALLBACK = "http://127.0.0.1:3000/callback"
JENNY = "jenny@example.com"


def provider_config() -> dict[str, object]:
    """A realistic configuration: one sandbox user, three kinds of client."""
    return {
        "issuer": ISSUER,
        "subject_salt": "test-subject-salt",
        "link": {
            "mode": "sandbox",
            "sandbox": {
                "users": [
                    {"email": JENNY, "phone": "+14155550123", "name": "Jenny Rosen"},
                    {"email": "sam@example.com", "phone": "+447700900123"},
                ]
            },
        },
        "clients": [
            {
                "client_id": "shop",
                "client_secret": "${SHOP_SECRET}",
                "redirect_uris": [SHOP_CALLBACK],
                "name": "Example Shop",
            },
            {
                "client_id": "blog",
                "client_secret": POST_SECRET,
                "token_endpoint_auth_method": "client_secret_post",
                "redirect_uris": ["https://blog.example.test/auth"],
                "scopes": ["openid", "email"],
            },
            {
                "client_id": "spa",
                "token_endpoint_auth_method": "none",
                "redirect_uris": [SPA_CALLBACK],
                "name": "Single Page App",
            },
        ],
    }


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping(provider_config(), {"SHOP_SECRET": SHOP_SECRET}, "test")


@pytest.fixture
def console() -> list[str]:
    """What the sandbox prints to the operator's console."""
    return []


@pytest.fixture
def live_clock() -> FixedClock:
    """A fixed clock starting now: client libraries check exp/iat against real time."""
    return FixedClock(int(time.time()))


@pytest.fixture
def app(
    settings: Settings, redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> Flask:
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    return create_app(settings, services)


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app, ISSUER)


@pytest.fixture
def shop(app: Flask) -> RelyingParty:
    return RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET)


# --- The fake Link server (tests/fake_link_server.py), for the live client's tests. ---


@pytest.fixture
def fake_link() -> Iterator[FakeLinkServer]:
    """A fake Link network on a loopback port, speaking both live dialects."""
    with FakeLinkServer() as server:
        yield server
