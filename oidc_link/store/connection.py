"""The redis-py client for ``redis_url``: one server (plain or TLS), a Unix socket, or the
master that Sentinels name, all with the same timeouts and retry policy and one connection
per thread (pinned_pool.py); a Redis Cluster, with the same timeouts; or, without a URL, an
embedded fakeredis. Builds clients only: every key is keyspace.py's, every command an
aggregate's (store/).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry
from redis.sentinel import Sentinel

from oidc_link.config.redis_settings import RedisAddress, RedisSettings, parse_redis_url
from oidc_link.errors import StoreUnavailableError
from oidc_link.store.command_packer import CommandPacker
from oidc_link.store.direct_client import DirectRedis
from oidc_link.store.pinned_pool import PinnedConnectionPool, PinnedSentinelConnectionPool

log = logging.getLogger(__name__)

# Seconds to connect and to wait for an answer, and how many times a failed connection is
# retried (with 50-500 ms of jittered backoff): an outage answers 503 within about a second
# when Redis refuses connections, and within REDIS_TIMEOUT when it does not answer at all.
REDIS_TIMEOUT = 2
REDIS_RETRIES = 2


def connect(redis_url: str | None, options: RedisSettings | None = None) -> redis.Redis:
    """A client for ``redis_url``, or an embedded in-process fakeredis when there is none.

    The URL was checked when the settings were loaded; here a bad one raises RedisUrlError.
    A cluster's client asks its nodes for the slot map here, so an unreachable cluster
    raises StoreUnavailableError now; the other clients connect at their first command.
    """
    if not redis_url:
        import fakeredis

        log.warning(
            "No REDIS_URL: using an embedded in-process Redis. State is lost on restart and "
            "not shared between processes; set REDIS_URL for anything but a demo."
        )
        return fakeredis.FakeRedis(decode_responses=True)
    address = parse_redis_url(redis_url)
    options = options or RedisSettings()
    tls = _tls_options(options) if address.tls else {}
    if address.uses_sentinel:
        return _sentinel_master(address, options, tls)
    if address.cluster:
        return _cluster(address, tls)  # type: ignore[return-value]
    credentials = {"db": address.db, "username": address.username, "password": address.password}
    if address.socket_path is not None:
        where: dict[str, Any] = {
            "connection_class": redis.UnixDomainSocketConnection,
            "path": address.socket_path,
            # As redis.Redis(unix_socket_path=...) has it: no such notices over a socket.
            "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        }
    else:
        host, port = address.hosts[0]
        where = {"host": host, "port": port}
        if tls:
            where["connection_class"] = redis.SSLConnection
            tls = {name: value for name, value in tls.items() if name != "ssl"}
    # The pool is built here, not by redis.Redis(host=...), only to pin a connection to each
    # thread; from_pool gives the client the pool to close with it, as Redis(host=...) does.
    pool = PinnedConnectionPool(**where, **credentials, **tls, **_client_policy())
    return DirectRedis.from_pool(pool)


def _client_policy() -> dict[str, Any]:
    """What every connection to the data server shares, whichever way it was found."""
    return {
        "decode_responses": True,
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
        # Stateless, so one serves every connection and thread.
        "command_packer": CommandPacker(),
        # Retry only when the connection failed (refused, reset, closed by a restarting or
        # failing-over server), never after a timeout: a command that timed out may have
        # run, and running GETDEL or INCR twice is not harmless.
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.5),
            REDIS_RETRIES,
            supported_errors=(redis.ConnectionError,),
        ),
    }


def _cluster(address: RedisAddress, tls: dict[str, Any]) -> RedisCluster:
    """redis-py's cluster client, seeded with the URL's nodes. It learns the slot map from
    the first node that answers, sends each command to the primary of its key's slot,
    follows MOVED and ASK, and on a broken connection or CLUSTERDOWN reloads the map and
    retries (``retry``: the same count and backoff as one server's), which is how it finds
    a replica promoted by a failover.

    Connections are pooled per node by redis-py, not pinned per thread: pinning saves a
    lock per command on one server, but a thread would hold a connection to every node it
    ever reached, and the cluster client drops and rebuilds node pools as the slot map
    changes, which a pin must not outlive. Nor is the command packer passed: redis-py's
    cluster client keeps only the connection arguments it knows.
    """
    policy = _client_policy()
    retry = policy.pop("retry")
    policy.pop("command_packer")
    try:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.hosts],
            username=address.username,
            password=address.password,
            retry=retry,
            **tls,
            **policy,
        )
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
        # No node answered (or none with the slot map): the message is redis-py's, which
        # names the last error met and never the password.
        raise StoreUnavailableError(f"Redis Cluster is unreachable: {error}") from error


def _tls_options(options: RedisSettings) -> dict[str, Any]:
    """redis-py's TLS arguments: the server's certificate is always verified, host name
    included (RFC 6125), against ``tls_ca_file`` or else the system's trusted CAs."""
    return {
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": options.tls_ca_file,
        "ssl_certfile": options.tls_cert_file,
        "ssl_keyfile": options.tls_key_file,
        "ssl_min_version": ssl.TLSVersion.TLSv1_2,
    }


def _sentinel_master(
    address: RedisAddress, options: RedisSettings, tls: dict[str, Any]
) -> redis.Redis:
    """A client that asks the Sentinels where the master is before each new connection, and
    again whenever a connection breaks or the old master answers READONLY after a failover
    (redis-py's SentinelManagedConnection), so that it follows the master on its own."""
    sentinels = Sentinel(
        list(address.hosts),
        sentinel_kwargs={
            "username": options.sentinel_username,
            "password": options.sentinel_password,
            "socket_timeout": REDIS_TIMEOUT,
            "socket_connect_timeout": REDIS_TIMEOUT,
            # No retries of a Sentinel on its own: asking the next Sentinel is the retry, and
            # the master connection's retry asks them all again.
            "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 0),
            **tls,
        },
    )
    return sentinels.master_for(
        address.service_name,
        redis_class=DirectRedis,
        connection_pool_class=PinnedSentinelConnectionPool,
        db=address.db,
        username=address.username,
        password=address.password,
        **tls,
        **_client_policy(),
    )
