"""redis+cluster:// end to end: the URL checked at load (never echoing a password), a real
Redis Cluster reached through it (one-key commands and one-slot MULTI routed to the slot's
primary), and an unreachable cluster or a dead primary met as an outage (503), not a bug."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from redis.cluster import RedisCluster

from oidc_link import create_app
from oidc_link.cli import main
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.config.redis_settings import RedisAddress, parse_redis_url
from oidc_link.errors import ConfigError, StoreUnavailableError
from oidc_link.models import Flow
from oidc_link.services import build_services
from oidc_link.store import Store, connect, keyspace
from tests.conftest import cluster_binaries, provider_config
from tests.fake_link_server import FakeLinkServer
from tests.redis_cluster import NodeTls, RunningCluster, free_ports, running_cluster
from tests.test_serve import live_config
from tests.tls_certificates import Certificates, make_certificates

PASSWORD = "pa55/wo?rd#with@symbols"


def settings_with(redis_url: str, redis: dict[str, str] | None = None) -> Settings:
    data: dict[str, Any] = {**provider_config(), "redis_url": redis_url}
    if redis is not None:
        data["redis"] = redis
    return settings_from_mapping(data, {"SHOP_SECRET": "shop-secret-0123456789abcdef"}, "test")


def config_problems(redis_url: str, redis: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        settings_with(redis_url, redis)
    return {problem.field: problem.message for problem in caught.value.problems}


# --- The URL, parsed and checked at load. ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+cluster://:secret@n1.internal:7000,n2.internal,[::1]:7002",
            RedisAddress(
                hosts=(("n1.internal", 7000), ("n2.internal", 6379), ("::1", 7002)),
                password="secret",
                cluster=True,
            ),
        ),
        (
            "rediss+cluster://app:secret@n1.internal:7000/0",
            RedisAddress(
                hosts=(("n1.internal", 7000),),
                tls=True,
                username="app",
                password="secret",
                cluster=True,
            ),
        ),
        ("redis+cluster://10.0.0.7/", RedisAddress(hosts=(("10.0.0.7", 6379),), cluster=True)),
    ],
)
def test_a_cluster_url_names_its_seed_nodes_tls_and_the_credentials(
    url: str, expected: RedisAddress
) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"redis+cluster://:{PASSWORD}@n1.internal:7000/1", "database 0 only"),
        (f"redis+cluster://:{PASSWORD}@n1.internal/mymaster", "database 0 only"),
        (f"redis+cluster://:{PASSWORD}@n1.internal,,n3.internal", "host 2"),
        (f"redis+cluster://:{PASSWORD}@n1.internal:70000", "port must be a number"),
        (f"redis+cluster://:{PASSWORD}@n1.internal?read_from_replicas=yes", "[redis] section"),
        (f"redis+cluster://:{PASSWORD}@", "needs a host"),
        (f"redis+clusters://:{PASSWORD}@n1.internal", "redis+cluster://"),
    ],
)
def test_an_unusable_cluster_url_is_a_config_error_that_never_echoes_the_password(
    url: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with(url)

    [problem] = caught.value.problems
    assert problem.field == "redis_url"
    assert says in problem.message
    for secret_part in (PASSWORD, "pa55", "symbols"):
        assert secret_part not in str(caught.value)


def test_several_hosts_in_a_plain_url_point_to_the_cluster_and_sentinel_forms() -> None:
    problems = config_problems("redis://a.internal,b.internal/0")

    assert "redis+cluster://" in problems["redis_url"]
    assert "redis+sentinel://" in problems["redis_url"]


def test_tls_files_go_with_rediss_cluster_and_sentinel_settings_never_with_a_cluster(
    tmp_path: Path,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")

    tls = settings_with("rediss+cluster://n1.internal:7000", {"tls_ca_file": str(ca)})
    plain = config_problems("redis+cluster://n1.internal:7000", {"tls_ca_file": str(ca)})
    sentinel = config_problems("redis+cluster://n1.internal", {"sentinel_password": "pw"})

    assert tls.redis.tls_ca_file == str(ca)
    assert "rediss+cluster://" in plain["redis.tls_ca_file"]
    assert "redis+sentinel://" in sentinel["redis.sentinel_password"]


# --- The session's real cluster, reached through redis+cluster://. ---


def test_a_cluster_url_builds_a_cluster_client_that_routes_each_key_to_its_slots_primary(
    redis_cluster: RunningCluster,
) -> None:
    client = connect(settings_with(redis_cluster.url).redis_url)
    keys = [f"oidc-link:test:{number}" for number in range(12)]

    for key in keys:
        assert client.set(key, key, ex=30)
    homes = {key: client.get_node_from_key(key).port for key in keys}

    assert isinstance(client, RedisCluster)
    # The URL names two seed nodes; the client found every primary from them.
    primaries = sorted(node.port for node in client.get_primaries())
    assert primaries == sorted(redis_cluster.primary_ports())
    # Twelve keys land on more than one primary: a real cluster, not one node.
    assert len(set(homes.values())) > 1
    for key, port in homes.items():
        with redis_cluster.node(port) as home:
            assert home.get(key) == key
    client.delete(*keys)
    client.close()


def test_a_multi_on_one_slot_runs_whole_and_one_across_slots_is_refused_before_it_is_sent(
    redis_cluster: RunningCluster,
) -> None:
    client = connect(redis_cluster.url)

    one_slot = client.pipeline(transaction=True)
    one_slot.set("oidc-link:test:{aggregate}:record", "saved", ex=30)
    one_slot.incr("oidc-link:test:{aggregate}:count")
    one_slot.expire("oidc-link:test:{aggregate}:count", 30)
    across = client.pipeline(transaction=True)
    across.set("oidc-link:test:{one}:record", "saved", ex=30)
    across.set("oidc-link:test:{another}:record", "saved", ex=30)

    # (A cluster transaction's replies come back as Redis sent them: "OK", not True.)
    assert one_slot.execute() == ["OK", 1, 1]
    assert client.get("oidc-link:test:{aggregate}:record") == "saved"
    assert client.ttl("oidc-link:test:{aggregate}:count") == 30
    with pytest.raises(redis.exceptions.RedisClusterException):
        across.execute()
    assert client.exists("oidc-link:test:{one}:record", "oidc-link:test:{another}:record") == 0
    client.delete("oidc-link:test:{aggregate}:record", "oidc-link:test:{aggregate}:count")
    client.close()


def test_a_store_built_from_the_settings_locks_and_releases_a_flow_on_the_cluster(
    redis_cluster: RunningCluster,
) -> None:
    store = build_services(settings_with(redis_cluster.url), clock=FixedClock()).store
    flow_id = f"flow-{time.monotonic_ns()}"

    token = store.flows.lock(flow_id, 30)
    held_again = store.flows.lock(flow_id, 30)
    assert token is not None
    store.flows.unlock(flow_id, token)

    assert held_again is None
    assert store.flows.lock(flow_id, 30) is not None
    assert store.server.ping()


# --- A cluster whose nodes want a password. ---


@pytest.fixture(scope="module")
def password_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    server, cli = cluster_binaries()
    directory = tmp_path_factory.mktemp("password-cluster")
    with running_cluster(server, cli, directory, password=PASSWORD) as cluster:
        yield cluster


def test_the_password_in_a_cluster_url_is_every_nodes(password_cluster: RunningCluster) -> None:
    store = build_services(settings_with(password_cluster.url), clock=FixedClock()).store
    flow_id = f"flow-{time.monotonic_ns()}"

    token = store.flows.lock(flow_id, 30)

    assert token is not None
    home = connect(password_cluster.url).get_node_from_key(keyspace.flow_lock(flow_id)).port
    with password_cluster.node(home) as node:
        assert node.get(keyspace.flow_lock(flow_id)) == token


def test_a_wrong_cluster_password_is_reported_without_echoing_either_password(
    password_cluster: RunningCluster,
) -> None:
    wrong = "not-the-cluster-password"
    url = password_cluster.url.replace(quote(PASSWORD, safe=""), wrong)

    with pytest.raises(StoreUnavailableError) as caught:
        connect(settings_with(url).redis_url)

    assert "Redis Cluster is unreachable" in str(caught.value)
    for secret in (wrong, PASSWORD, quote(PASSWORD, safe=""), "pa55", "symbols"):
        assert secret not in str(caught.value)


# --- A cluster that speaks TLS only, to clients and between its nodes. ---


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_cluster(certificates: Certificates, tmp_path: Path) -> Iterator[RunningCluster]:
    """A cluster with no plain port, whose nodes want client certificates."""
    server, cli = cluster_binaries()
    tls = NodeTls(certificates.ca, certificates.server_cert, certificates.server_key)
    with running_cluster(server, cli, tmp_path, tls) as cluster:
        yield cluster


def tls_settings(cluster: RunningCluster, certificates: Certificates, ca: Path) -> Settings:
    return settings_with(
        cluster.url,
        {
            "tls_ca_file": str(ca),
            "tls_cert_file": str(certificates.client_cert),
            "tls_key_file": str(certificates.client_key),
        },
    )


def test_rediss_cluster_speaks_tls_to_every_node_with_the_configured_files(
    tls_cluster: RunningCluster, certificates: Certificates
) -> None:
    settings = tls_settings(tls_cluster, certificates, certificates.ca)
    client = connect(settings.redis_url, settings.redis)
    store = Store(client, FixedClock())
    keys = [f"oidc-link:test:{number}" for number in range(12)]

    for key in keys:
        assert client.set(key, key, ex=30)
    token = store.flows.lock("flow-over-tls", 30)
    homes = {client.get_node_from_key(key).port for key in keys}

    assert tls_cluster.url.startswith("rediss+cluster://")
    assert token is not None
    # The nodes have no plain port: the keys on several primaries went there over TLS.
    assert len(homes) > 1
    for key in keys:
        with tls_cluster.node(client.get_node_from_key(key).port) as home:
            assert home.get(key) == key
    client.close()


def test_a_cluster_whose_certificates_another_ca_signed_is_refused_with_a_clear_error(
    tls_cluster: RunningCluster, certificates: Certificates
) -> None:
    settings = tls_settings(tls_cluster, certificates, certificates.other_ca)

    with pytest.raises(StoreUnavailableError) as caught:
        connect(settings.redis_url, settings.redis)

    assert "Redis Cluster is unreachable" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


# --- Outages: a cluster nobody answers for, and a primary that dies. ---


def test_a_cluster_that_no_seed_node_answers_for_is_unavailable_at_once() -> None:
    first, second = free_ports(2)
    url = f"redis+cluster://:{PASSWORD}@127.0.0.1:{first},127.0.0.1:{second}"

    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        connect(url)

    assert time.monotonic() - started < 3
    assert "Redis Cluster is unreachable" in str(caught.value)
    for secret_part in (PASSWORD, "pa55", "symbols"):
        assert secret_part not in str(caught.value)


def test_serve_stops_with_a_message_before_any_worker_when_no_cluster_node_answers(
    tmp_path: Path, fake_link: FakeLinkServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, port = free_ports(3)
    url = f"redis+cluster://:{quote(PASSWORD, safe='')}@127.0.0.1:{first},127.0.0.1:{second}"
    config = tmp_path / "oidc-link.toml"
    config.write_text(live_config(port, url, fake_link))

    assert main(["serve", "--config", str(config)]) == 1
    error = capsys.readouterr().err
    assert "Cannot use Redis: Redis Cluster is unreachable" in error
    assert PASSWORD not in error and "pa55" not in error


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RunningCluster]:
    """A cluster of this test's own, which it may break (the session's must stay whole)."""
    server, cli = cluster_binaries()
    with running_cluster(server, cli, tmp_path) as cluster:
        yield cluster


def _wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.1)


def test_a_slot_moving_to_another_primary_is_followed_through_ask_then_moved(
    own_cluster: RunningCluster,
) -> None:
    client = connect(own_cluster.url)
    store = Store(client, FixedClock())
    flow_id = "flow-whose-slot-moves"
    key = keyspace.flow_lock(flow_id)
    token = store.flows.lock(flow_id, 600)
    assert token is not None
    slot = client.keyslot(key)
    source = client.get_node_from_key(key).port
    target = next(port for port in own_cluster.primary_ports() if port != source)

    def node_id(port: int) -> str:
        with own_cluster.node(port) as node:
            return str(node.execute_command("CLUSTER", "MYID"))

    # A slot migration as redis-cli --cluster reshard does it, for this one slot.
    with own_cluster.node(source) as old_home, own_cluster.node(target) as new_home:
        new_home.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
        old_home.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
        old_home.migrate("127.0.0.1", target, [key], 0, 5000)
        # Half-way: the old home answers ASK for the key it no longer has.
        during = store.flows.lock_and_load(flow_id, 600)
        for port in own_cluster.primary_ports():
            with own_cluster.node(port) as primary:
                primary.execute_command("CLUSTER", "SETSLOT", slot, "NODE", node_id(target))
    # Done: the old home answers MOVED, and the client learns the slot's new primary.
    after = store.flows.lock(flow_id, 600)
    store.flows.unlock(flow_id, token)

    assert during == (None, None)
    assert after is None
    assert client.get_node_from_key(key).port == target
    # The release script ran on the new primary (loading itself there): the lock is free.
    assert store.flows.lock(flow_id, 600) is not None


def test_a_full_cluster_refuses_writes_as_an_outage_with_its_cause_and_reads_go_on(
    own_cluster: RunningCluster,
) -> None:
    clock = FixedClock()
    store = Store(connect(own_cluster.url), clock)
    flow = Flow(
        id="flow-saved-before-memory-ran-out",
        browser_digest="browser",
        client_id="shop",
        authorization={"client_id": "shop"},
        csrf_token="csrf",
        created_at=clock.now(),
        expires_at=clock.now() + 600,
    )
    store.flows.add(flow)

    def set_maxmemory(value: str) -> None:
        for port in own_cluster.primary_ports():
            with own_cluster.node(port) as primary:
                primary.config_set("maxmemory-policy", "noeviction")
                primary.config_set("maxmemory", value)

    set_maxmemory("1")
    with pytest.raises(StoreUnavailableError) as caught:
        store.flows.lock("flow-while-memory-is-out", 600)
    read = store.flows.load(flow.id)
    set_maxmemory("0")

    assert caught.value.cause == "out_of_memory"
    assert read == flow
    assert store.flows.lock("flow-while-memory-is-out", 600) is not None


def test_readyz_turns_unready_when_every_node_is_down(own_cluster: RunningCluster) -> None:
    settings = settings_with(own_cluster.url)
    # A clock at the real time: /readyz compares it with the cluster's.
    services = build_services(settings, clock=FixedClock(int(time.time())))
    client = create_app(settings, services).test_client()
    assert client.get("/readyz").status_code == 200

    for port in own_cluster.ports:
        own_cluster.kill(port)
    started = time.monotonic()
    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.get_json()["checks"]["redis"] == "unreachable"
    assert time.monotonic() - started < 10


def test_a_dead_primarys_slots_are_unavailable_until_its_replica_takes_over(
    own_cluster: RunningCluster,
) -> None:
    client = connect(own_cluster.url)
    store = Store(client, FixedClock())
    flow_id = "flow-on-a-primary-that-dies"
    home = client.get_node_from_key(keyspace.flow_lock(flow_id)).port
    assert store.flows.lock(flow_id, 600) is not None

    def replica_has_every_write() -> bool:
        with own_cluster.node(home) as primary:
            replication = primary.info("replication")
        return replication.get("slave0", {}).get("offset") == replication["master_repl_offset"]

    def replica_promoted() -> bool:
        survivor = next(port for port in own_cluster.ports if port != home)
        with own_cluster.node(survivor) as other:
            state = other.cluster("info")["cluster_state"]
        return state == "ok" and len(own_cluster.primary_ports()) == 3

    # Replication is asynchronous: the lock must have reached the replica before the
    # primary dies, or its absence afterwards would be Redis's documented loss, not ours.
    _wait_until(replica_has_every_write, 10, "the replica receives the lock")
    own_cluster.kill(home)
    with pytest.raises(StoreUnavailableError):
        store.flows.lock(flow_id, 600)
    _wait_until(replica_promoted, 60, "the cluster promotes the dead primary's replica")
    after: list[str | None] = []
    _wait_until(lambda: _locked(store, flow_id, after), 30, "the store reaches the new primary")

    # The same client found the slot's new primary, where the lock is still held.
    assert after == [None]


def _locked(store: Store, flow_id: str, answers: list[str | None]) -> bool:
    """Try to take the flow's lock; note the answer once the store reaches its primary."""
    try:
        answers.append(store.flows.lock(flow_id, 600))
        return True
    except StoreUnavailableError:
        return False
