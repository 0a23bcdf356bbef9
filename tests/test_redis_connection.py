"""redis_url's forms end to end: URL checks at load (never echoing a password), a real
redis-server over TLS with certificates made here, and a real Sentinel naming the master,
following it through a failover."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.config.redis_settings import (
    RedisAddress,
    RedisSettings,
    RedisUrlError,
    parse_redis_url,
)
from oidc_link.errors import ConfigError, StoreUnavailableError
from oidc_link.services import build_services
from oidc_link.store import Store, keyspace
from oidc_link.store.connection import connect
from tests.conftest import REQUIRE_REAL_REDIS, provider_config
from tests.tls_certificates import Certificates, make_certificates

PASSWORD = "pa55/wo?rd#with@symbols"
MASTER_PASSWORD = "master-password-0123"
SENTINEL_PASSWORD = "sentinel-password-4567"
SERVICE = "oidc"


def settings_with(redis_url: str, redis: dict[str, str] | None = None, **environ: str) -> Settings:
    data: dict[str, Any] = {**provider_config(), "redis_url": redis_url}
    if redis is not None:
        data["redis"] = redis
    environ = {"SHOP_SECRET": "shop-secret-0123456789abcdef", **environ}
    return settings_from_mapping(data, environ, "test")


def config_problems(redis_url: str, redis: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        settings_with(redis_url, redis)
    return {problem.field: problem.message for problem in caught.value.problems}


# --- The URL forms, parsed and checked at load. ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache.internal", RedisAddress(hosts=(("cache.internal", 6379),))),
        (
            "redis://:secret@10.0.0.5:6380/3",
            RedisAddress(hosts=(("10.0.0.5", 6380),), db=3, password="secret"),
        ),
        (
            "rediss://app:secret@redis.example.com:6380/0",
            RedisAddress(
                hosts=(("redis.example.com", 6380),), tls=True, username="app", password="secret"
            ),
        ),
        ("redis://[::1]:7000/", RedisAddress(hosts=(("::1", 7000),))),
        (
            "unix://:secret@/run/redis/redis.sock?db=2",
            RedisAddress(socket_path="/run/redis/redis.sock", db=2, password="secret"),
        ),
        (
            "redis+sentinel://:secret@s1.internal,s2.internal:26380,[::1]/mymaster/1",
            RedisAddress(
                hosts=(("s1.internal", 26379), ("s2.internal", 26380), ("::1", 26379)),
                service_name="mymaster",
                db=1,
                password="secret",
            ),
        ),
        (
            "rediss+sentinel://sentinel.internal/mymaster",
            RedisAddress(hosts=(("sentinel.internal", 26379),), service_name="mymaster", tls=True),
        ),
    ],
)
def test_each_url_form_names_the_server_the_database_and_the_credentials(
    url: str, expected: RedisAddress
) -> None:
    assert parse_redis_url(url) == expected


def test_a_password_is_percent_decoded_and_one_with_unencoded_symbols_still_stays_whole() -> None:
    assert parse_redis_url("redis://:p%40ss%2Fw@host/0").password == "p@ss/w"
    # "/", "?", "#" and "@" unencoded: the last "@" ends the credentials.
    unencoded = parse_redis_url(f"redis://user:{PASSWORD.replace('#', '%23')}@host:6380/4")
    assert (unencoded.username, unencoded.password) == ("user", PASSWORD)
    assert (unencoded.hosts, unencoded.db) == ((("host", 6380),), 4)


def test_the_address_never_shows_the_password_in_its_repr() -> None:
    address = parse_redis_url(f"redis+sentinel://:{MASTER_PASSWORD}@s1/master")
    settings = RedisSettings(sentinel_password=SENTINEL_PASSWORD)

    assert MASTER_PASSWORD not in repr(address)
    assert SENTINEL_PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"http://:{PASSWORD}@redis.internal", "must start with redis://"),
        (f"redis://{PASSWORD.replace(':', '')}@redis.internal", "colon"),
        (f"redis://:{PASSWORD}@redis.internal:http/0", "port must be a number"),
        (f"redis://:{PASSWORD}@redis.internal:99999", "port must be a number"),
        (f"redis://:{PASSWORD}@redis.internal/zero", "database must be a number"),
        (f"redis://:{PASSWORD}@a.internal,b.internal/0", "use redis+sentinel://"),
        (f"redis://:{PASSWORD}@redis.internal/0?ssl_cert_reqs=none", "ssl_cert_reqs"),
        ("redis://redis.internal/0?password=pa55-symbols", "[redis] section"),
        (f"redis+sentinel://:{PASSWORD}@s1.internal", "service name"),
        (f"redis+sentinel://:{PASSWORD}@s1.internal/", "service name"),
        (f"redis+sentinel://:{PASSWORD}@s1.internal/master/0/extra", "service name"),
        (f"redis+sentinel://:{PASSWORD}@s1.internal,/master", "host 2"),
        (f"redis+sentinel://:{PASSWORD}@[::1/master", "IPv6"),
        (f"unix://:{PASSWORD}@relative.sock", "absolute socket path"),
        (f"rediss://:{PASSWORD}@/0", "needs a host"),
        ("redis://user:@redis.internal/0", "empty password"),
    ],
)
def test_an_unusable_url_is_a_config_error_that_never_echoes_the_password(
    url: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with(url)

    [problem] = caught.value.problems
    assert problem.field == "redis_url"
    assert says in problem.message
    for secret_part in (PASSWORD, "pa55", "symbols"):
        assert secret_part not in str(caught.value)


def test_redis_url_from_the_environment_is_checked_like_the_file() -> None:
    environ = {"SHOP_SECRET": "x" * 24, "REDIS_URL": f"redis+sentinel://:{PASSWORD}@s1"}

    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(provider_config(), environ, "test")

    assert [p.field for p in caught.value.problems] == ["redis_url"]
    assert PASSWORD not in str(caught.value)


def test_tls_and_sentinel_settings_are_read_from_the_redis_section(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")

    tls = settings_with("rediss://redis.internal:6380/0", {"tls_ca_file": str(ca)})
    sentinel = settings_with(
        "redis+sentinel://:master@s1.internal/oidc",
        {"sentinel_username": "watcher", "sentinel_password": "${SENTINEL_PW}"},
        SENTINEL_PW="sentinel-pw",
    )

    assert tls.redis == RedisSettings(tls_ca_file=str(ca))
    assert sentinel.redis.sentinel_username == "watcher"
    assert sentinel.redis.sentinel_password == "sentinel-pw"


def test_redis_settings_that_do_not_fit_the_url_are_each_reported(tmp_path: Path) -> None:
    pem = tmp_path / "client.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")

    plain = config_problems(
        "redis://redis.internal/0", {"tls_ca_file": str(pem), "sentinel_password": "pw"}
    )
    files = config_problems(
        "rediss://redis.internal/0",
        {"tls_ca_file": str(tmp_path / "missing.pem"), "tls_cert_file": str(pem)},
    )
    unknown = config_problems("rediss://redis.internal/0", {"tls_verify": "no"})

    assert "rediss://" in plain["redis.tls_ca_file"]
    assert "redis+sentinel://" in plain["redis.sentinel_password"]
    assert files == {
        "redis.tls_ca_file": "is not a file (a PEM file is expected)",
        "redis.tls_cert_file": "and redis.tls_key_file go together (a certificate and its key)",
    }
    assert unknown == {"redis.tls_verify": "unknown setting"}


def test_redis_settings_without_a_redis_url_are_reported() -> None:
    data = {**provider_config(), "redis": {"sentinel_password": "pw"}}

    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, {"SHOP_SECRET": "x" * 24}, "test")

    assert [str(p) for p in caught.value.problems] == [
        "redis.sentinel_password: is set but redis_url is not"
    ]


def test_a_bad_url_given_straight_to_connect_raises_without_the_password() -> None:
    with pytest.raises(RedisUrlError) as caught:
        connect(f"redis://:{PASSWORD}@host:port/0")

    assert PASSWORD not in str(caught.value)


# --- Real servers: redis-server over TLS, and Sentinel. ---


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if REQUIRE_REAL_REDIS:
            pytest.fail("redis-server is required (OIDC_LINK_TEST_REAL_REDIS=required)")
        pytest.skip("redis-server is not installed; CI runs these against a real one")
    return binary


def _run(stack: ExitStack, arguments: list[str], ready: Callable[[], redis.Redis]) -> None:
    """Start ``redis-server arguments`` and wait until ``ready()``'s client answers PING;
    the process is killed when ``stack`` closes."""
    process = subprocess.Popen(
        [_redis_server_binary(), *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def stop() -> None:
        process.kill()
        process.wait(timeout=10)

    stack.callback(stop)
    deadline = time.monotonic() + 10
    while True:
        client = ready()
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


def _wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.1)


def _round_trip(store: Store, seconds: int = 30) -> str:
    """A real round trip through the Store: take a flow's lock, find it held, release it.

    The lock left behind lives ``seconds``: long enough for a test that checks it later.
    """
    flow_id = f"flow-{time.monotonic_ns()}"
    token = store.flows.lock(flow_id, seconds)
    assert token is not None
    assert store.flows.lock(flow_id, seconds) is None
    store.flows.unlock(flow_id, token)
    assert store.flows.lock(flow_id, seconds) is not None
    return keyspace.flow_lock(flow_id)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@dataclass(frozen=True)
class TlsServer:
    port: int
    certificates: Certificates

    def settings(self, **overrides: str) -> dict[str, str]:
        return {
            "tls_ca_file": str(self.certificates.ca),
            "tls_cert_file": str(self.certificates.client_cert),
            "tls_key_file": str(self.certificates.client_key),
            **overrides,
        }

    def direct_client(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port or self.port,
            ssl=True,
            ssl_ca_certs=str(self.certificates.ca),
            ssl_certfile=str(self.certificates.client_cert),
            ssl_keyfile=str(self.certificates.client_key),
            decode_responses=True,
        )


@pytest.fixture
def tls_server(certificates: Certificates, tmp_path: Path) -> Iterator[TlsServer]:
    """A redis-server that speaks TLS only (no plain port) and wants client certificates."""
    server = TlsServer(_free_port(), certificates)
    with ExitStack() as stack:
        _run(
            stack,
            [
                "--port", "0",
                "--tls-port", str(server.port),
                "--bind", "127.0.0.1",
                "--dir", str(tmp_path),
                "--save", "",
                "--appendonly", "no",
                "--tls-cert-file", str(certificates.server_cert),
                "--tls-key-file", str(certificates.server_key),
                "--tls-ca-cert-file", str(certificates.ca),
                "--tls-auth-clients", "yes",
            ],
            server.direct_client,
        )  # fmt: skip
        yield server


def test_a_store_round_trip_works_over_tls_with_the_configured_ca_and_client_certificate(
    tls_server: TlsServer,
) -> None:
    settings = settings_with(f"rediss://127.0.0.1:{tls_server.port}/0", tls_server.settings())
    store = build_services(settings, clock=FixedClock()).store

    key = _round_trip(store)

    # The server has no plain-text port: what the Store wrote went over TLS.
    with tls_server.direct_client() as server:
        assert server.ttl(key) == 30


def test_a_server_certificate_from_another_ca_is_refused_with_a_clear_error(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_with(
        f"rediss://127.0.0.1:{tls_server.port}/0",
        tls_server.settings(tls_ca_file=str(tls_server.certificates.other_ca)),
    )
    store = Store(connect(settings.redis_url, settings.redis), FixedClock())

    with pytest.raises(StoreUnavailableError) as caught:
        store.flows.lock("flow", 30)

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text


def test_the_server_certificate_must_name_the_host_of_the_url(tls_server: TlsServer) -> None:
    # The certificate names 127.0.0.1 only; "localhost" reaches the same server.
    settings = settings_with(f"rediss://localhost:{tls_server.port}/0", tls_server.settings())
    store = Store(connect(settings.redis_url, settings.redis), FixedClock())

    with pytest.raises(StoreUnavailableError) as caught:
        store.flows.lock("flow", 30)

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "mismatch" in str(caught.value)


def test_a_server_that_wants_a_client_certificate_refuses_a_client_without_one(
    tls_server: TlsServer,
) -> None:
    settings = settings_with(
        f"rediss://127.0.0.1:{tls_server.port}/0",
        {"tls_ca_file": str(tls_server.certificates.ca)},
    )
    store = Store(connect(settings.redis_url, settings.redis), FixedClock())

    with pytest.raises(StoreUnavailableError):
        store.flows.lock("flow", 30)


def test_rediss_sentinel_speaks_tls_to_the_sentinel_and_to_the_master(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    certificates = tls_server.certificates
    sentinel_port = _free_port()
    configuration = tmp_path / "sentinel.conf"
    configuration.write_text(
        "port 0\n"
        f"tls-port {sentinel_port}\n"
        "bind 127.0.0.1\n"
        f"dir {tmp_path}\n"
        f"tls-cert-file {certificates.server_cert}\n"
        f"tls-key-file {certificates.server_key}\n"
        f"tls-ca-cert-file {certificates.ca}\n"
        "tls-auth-clients yes\n"
        # The Sentinel's own connections to the master use TLS as well.
        "tls-replication yes\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {tls_server.port} 1\n"
    )

    with ExitStack() as stack:
        _run(
            stack,
            [str(configuration), "--sentinel"],
            lambda: tls_server.direct_client(sentinel_port),
        )
        settings = settings_with(
            f"rediss+sentinel://127.0.0.1:{sentinel_port}/{SERVICE}/0", tls_server.settings()
        )
        store = build_services(settings, clock=FixedClock()).store

        key = _round_trip(store)

    with tls_server.direct_client() as master:
        assert master.ttl(key) == 30


def test_a_unix_socket_url_reaches_the_server(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    with ExitStack() as stack:
        _run(
            stack,
            ["--port", "0", "--unixsocket", str(path), "--dir", str(tmp_path), "--save", ""],
            lambda: redis.Redis(unix_socket_path=str(path)),
        )
        store = build_services(settings_with(f"unix://{path}?db=3"), clock=FixedClock()).store

        key = _round_trip(store)

        with redis.Redis(unix_socket_path=str(path), db=3) as server:
            assert server.ttl(key) == 30


# Sentinel: a master and a replica with a password, and one Sentinel (quorum 1) with a
# password of its own, monitoring the master as SERVICE.


@dataclass
class SentinelSetup:
    master_port: int
    replica_port: int
    sentinel_port: int
    stack: ExitStack

    @property
    def url(self) -> str:
        return f"redis+sentinel://:{MASTER_PASSWORD}@127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def data_client(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, password=MASTER_PASSWORD, decode_responses=True)

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(
            "127.0.0.1", self.sentinel_port, password=SENTINEL_PASSWORD, decode_responses=True
        )

    def master_port_named(self) -> int:
        with self.sentinel_client() as sentinel:
            _, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)


def _data_server(stack: ExitStack, port: int, directory: Path, *extra: str) -> None:
    directory.mkdir()
    _run(
        stack,
        [
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--requirepass", MASTER_PASSWORD,
            "--masterauth", MASTER_PASSWORD,
            # A replica's first sync starts at once instead of after the default 5 s.
            "--repl-diskless-sync-delay", "0",
            *extra,
        ],
        lambda: redis.Redis("127.0.0.1", port, password=MASTER_PASSWORD),
    )  # fmt: skip


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    with ExitStack() as stack:
        setup = SentinelSetup(_free_port(), _free_port(), _free_port(), stack)
        _data_server(stack, setup.master_port, tmp_path / "master")
        _data_server(
            stack,
            setup.replica_port,
            tmp_path / "replica",
            "--replicaof", "127.0.0.1", str(setup.master_port),
        )  # fmt: skip

        def replica_in_sync() -> bool:
            with setup.data_client(setup.replica_port) as replica:
                return replica.info("replication").get("master_link_status") == "up"

        _wait_until(replica_in_sync, 10, "the replica syncs with the master")
        # Sentinel rewrites its configuration file, so it gets one of its own.
        configuration = tmp_path / "sentinel.conf"
        configuration.write_text(
            f"port {setup.sentinel_port}\n"
            "bind 127.0.0.1\n"
            f"dir {tmp_path}\n"
            f"requirepass {SENTINEL_PASSWORD}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {setup.master_port} 1\n"
            f"sentinel auth-pass {SERVICE} {MASTER_PASSWORD}\n"
            f"sentinel down-after-milliseconds {SERVICE} 5000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        _run(stack, [str(configuration), "--sentinel"], setup.sentinel_client)
        yield setup


def sentinel_settings(setup: SentinelSetup, password: str = SENTINEL_PASSWORD) -> Settings:
    return settings_with(setup.url, {"sentinel_password": password})


def test_a_store_round_trip_goes_to_the_master_that_sentinel_names(
    sentinel_setup: SentinelSetup,
) -> None:
    store = build_services(sentinel_settings(sentinel_setup), clock=FixedClock()).store

    key = _round_trip(store)

    with sentinel_setup.data_client(sentinel_setup.master_port) as master:
        assert master.ttl(key) == 30


def test_a_wrong_sentinel_password_is_reported_without_echoing_either_password(
    sentinel_setup: SentinelSetup,
) -> None:
    settings = sentinel_settings(sentinel_setup, password="not-the-sentinel-password")
    store = Store(connect(settings.redis_url, settings.redis), FixedClock())

    with pytest.raises(StoreUnavailableError) as caught:
        store.flows.lock("flow", 30)

    message = str(caught.value)
    assert f"No master found for '{SERVICE}'" in message
    assert "AuthenticationError" in message
    for secret in ("not-the-sentinel-password", SENTINEL_PASSWORD, MASTER_PASSWORD):
        assert secret not in message


def test_with_every_sentinel_down_the_store_is_unavailable_within_the_timeouts(
    sentinel_setup: SentinelSetup,
) -> None:
    settings = sentinel_settings(sentinel_setup)
    store = Store(connect(settings.redis_url, settings.redis), FixedClock())
    _round_trip(store)
    # The Sentinel goes first (the last process started is stopped first), then the
    # master: the pooled connection breaks and nobody can name a new master.
    sentinel_setup.stack.close()

    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        store.flows.lock("flow", 30)

    assert time.monotonic() - started < 3
    assert f"No master found for '{SERVICE}'" in str(caught.value)


def test_the_store_follows_the_new_master_after_a_sentinel_failover(
    sentinel_setup: SentinelSetup,
) -> None:
    store = build_services(sentinel_settings(sentinel_setup), clock=FixedClock()).store
    # The waits below may add up to a minute on a loaded machine: the lock written before
    # the failover must outlive them, or its absence afterwards would prove nothing.
    before = _round_trip(store, seconds=600)

    def sentinel_knows_the_replica() -> bool:
        with sentinel_setup.sentinel_client() as sentinel:
            replicas = sentinel.execute_command("SENTINEL", "REPLICAS", SERVICE)
        return any(replica.get("master-link-status") == "ok" for replica in replicas)

    def replica_holds_the_write() -> bool:
        with sentinel_setup.data_client(sentinel_setup.replica_port) as replica:
            return bool(replica.exists(before))

    _wait_until(sentinel_knows_the_replica, 20, "Sentinel discovers the replica")
    # Replication is asynchronous: a failover forced before the replica has the write
    # would lose it, as Redis documents. The store's promise starts once it is replicated.
    _wait_until(replica_holds_the_write, 20, "the replica receives the write")
    with sentinel_setup.sentinel_client() as sentinel:
        # SENTINEL FAILOVER: a forced failover, as if the master were unreachable.
        assert sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
    _wait_until(
        lambda: sentinel_setup.master_port_named() == sentinel_setup.replica_port,
        30,
        "Sentinel names the replica as the new master",
    )

    def old_master_demoted() -> bool:
        with sentinel_setup.data_client(sentinel_setup.master_port) as old_master:
            return old_master.info("replication")["role"] == "slave"

    # Until Sentinel demotes the old master (and drops its clients), a pooled connection
    # can still write there, and Redis loses such writes when the old master resyncs:
    # Sentinel's known window, in the ops guide. After it, the store must find the new
    # master by itself: its pooled connection to the old one is now broken.
    _wait_until(old_master_demoted, 30, "Sentinel turns the old master into a replica")
    after = _round_trip(store)

    with sentinel_setup.data_client(sentinel_setup.replica_port) as new_master:
        assert new_master.info("replication")["role"] == "master"
        assert new_master.ttl(after) == 30
        assert new_master.ttl(before) > 0
