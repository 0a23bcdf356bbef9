"""Where Redis is (``redis_url``: one server, a Unix socket, a master named by Sentinels, or
the nodes of a Redis Cluster) and how to reach it (``[redis]``: TLS files, Sentinel
credentials), read and checked at load.

Pure parsing: no connection is made here, and no message ever repeats a part of the URL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from oidc_link.config.reader import Reader

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
# scheme -> (TLS?, what the hosts are); redis-py's own URL forms plus Sentinel's and
# Cluster's, in TLS and plain.
SCHEMES = {
    "redis": (False, "server"),
    "rediss": (True, "server"),
    "unix": (False, "server"),
    "redis+sentinel": (False, "sentinels"),
    "rediss+sentinel": (True, "sentinels"),
    "redis+cluster": (False, "cluster"),
    "rediss+cluster": (True, "cluster"),
}
SCHEME_HINT = (
    "must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, "
    "redis+cluster:// or rediss+cluster://"
)
_DIGITS = re.compile(r"[0-9]{1,9}")
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class RedisUrlError(ValueError):
    """``redis_url`` cannot be used; the message names what is wrong, never the URL's parts
    (which may hold the password)."""


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is, as ``redis_url`` says."""

    # The server (one), the Sentinels to ask for the master, or the cluster nodes to ask
    # for the others (one or more each).
    hosts: tuple[tuple[str, int], ...] = ()
    socket_path: str | None = None
    # Sentinel's name for the master (``sentinel monitor <name> ...``); None without Sentinel.
    service_name: str | None = None
    tls: bool = False
    db: int = 0
    # The data server's credentials (with Sentinel: the master's, not the Sentinels'; with
    # Cluster: every node's, as a cluster's nodes share them).
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # Redis Cluster: ``hosts`` are seed nodes, from which the client learns the others.
    cluster: bool = False

    @property
    def uses_sentinel(self) -> bool:
        return self.service_name is not None


# WAIT holds the connection until it answers: well below the client's 2 s socket timeout.
MAX_WAIT_FOR_REPLICA_MS = 1000


@dataclass(frozen=True)
class RedisSettings:
    """``[redis]``: what ``redis_url`` cannot carry well. File paths stay out of the URL so
    that the URL, a secret, can come from the platform while the files are the deployment's."""

    # PEM CA bundle that signed the server's certificate; None: the system's trusted CAs.
    tls_ca_file: str | None = None
    # A client certificate and its key, for servers that ask for one (tls-auth-clients yes).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # The Sentinels' own credentials (sentinel.conf ``requirepass``/``sentinel-user``), which
    # may differ from the master's in the URL.
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    # After a code's redemption and a refresh token's rotation, wait up to this long for a
    # replica to acknowledge the write (WAIT 1), and answer 503 when none does: a spend the
    # replica has cannot come back with a failover. 0 (the default): do not wait.
    wait_for_replica_ms: int = 0
    # How tokens, codes and sign-ins are written (KEY_LAYOUTS): "tagged" (the default) or
    # "compatible", as versions before issue 17 wrote them, for the rollout that replaces
    # such a version.
    key_layout: str = "tagged"

    @property
    def compatible_layout(self) -> bool:
        return self.key_layout == KEY_LAYOUT_COMPATIBLE


# ``[redis] key_layout``: "tagged" writes tokens that name their family, under hash-tagged
# keys (every Redis, and Cluster); "compatible" writes tokens, codes and pending sign-ins as
# 1fcd0cc and earlier did (no family in a token, untagged keys), so that instances of such a
# version still serving beside this one during a rolling upgrade find them. Both read tokens
# and codes of either form (docs/operations.md "Upgrading"); a sign-in, only in their own.
KEY_LAYOUT_TAGGED = "tagged"
KEY_LAYOUT_COMPATIBLE = "compatible"
KEY_LAYOUTS = (KEY_LAYOUT_TAGGED, KEY_LAYOUT_COMPATIBLE)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse ``url`` into an address; raises RedisUrlError.

    Forms: ``redis://[[user]:password@]host[:port][/db]``, the same with ``rediss://`` (TLS),
    ``unix://[[user]:password@]/path/to.sock[?db=N]``, and
    ``redis+sentinel://[[user]:password@]host1[:port],host2[:port]/service_name[/db]``
    (``rediss+sentinel://``: TLS to the Sentinels and to the master), and
    ``redis+cluster://[[user]:password@]host1[:port],host2[:port]`` (any nodes of a Redis
    Cluster; ``rediss+cluster://``: TLS to every node).
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        raise RedisUrlError(SCHEME_HINT)
    scheme = scheme.lower()
    tls, hosts_are = SCHEMES[scheme]
    # The last "@" ends the credentials, so a password with an unencoded "/", "?", "#" or
    # "@" still lands whole in the password and never in a host or an error message.
    userinfo, at, remainder = rest.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    authority, path, query = _split_remainder(remainder)
    parameters = _query(query, allowed={"db"} if scheme == "unix" else set())

    if scheme == "unix":
        if authority or not path or path == "/":
            raise RedisUrlError("unix:// needs an absolute socket path: unix:///run/redis.sock")
        db = _db(parameters.get("db", "0"))
        return RedisAddress(socket_path=unquote(path), db=db, username=username, password=password)
    if not authority:
        raise RedisUrlError("needs a host")
    if hosts_are == "cluster":
        return _cluster_address(authority, path, tls, username, password)
    if hosts_are == "sentinels":
        hosts = tuple(
            _host_and_port(item, DEFAULT_SENTINEL_PORT, index)
            for index, item in enumerate(authority.split(","), start=1)
        )
        segments = path.split("/")[1:] if path else []
        if not segments or not segments[0] or len(segments) > 2:
            raise RedisUrlError(
                "a Sentinel URL ends with the master's service name, and optionally the "
                "database: redis+sentinel://host:26379/mymaster/0"
            )
        service_name = unquote(segments[0])
        if any(character.isspace() for character in service_name):
            raise RedisUrlError("the Sentinel service name must not contain spaces")
        db = _db(segments[1]) if len(segments) == 2 and segments[1] else 0
        return RedisAddress(
            hosts=hosts,
            service_name=service_name,
            tls=tls,
            db=db,
            username=username,
            password=password,
        )
    if "," in authority:
        raise RedisUrlError(
            "names several hosts: use redis+sentinel:// for Sentinels, redis+cluster:// for "
            "the nodes of a Redis Cluster"
        )
    host = _host_and_port(authority, DEFAULT_PORT, 1)
    stripped = path.strip("/")
    db = _db(stripped) if stripped else 0
    return RedisAddress(hosts=(host,), tls=tls, db=db, username=username, password=password)


def _cluster_address(
    authority: str, path: str, tls: bool, username: str | None, password: str | None
) -> RedisAddress:
    """A Redis Cluster's seed nodes. A cluster has database 0 only (SELECT is refused), so a
    path other than ``/`` or ``/0`` is an error rather than a setting silently dropped."""
    hosts = tuple(
        _host_and_port(item, DEFAULT_PORT, index)
        for index, item in enumerate(authority.split(","), start=1)
    )
    if path.strip("/") not in ("", "0"):
        raise RedisUrlError(
            "a Redis Cluster has database 0 only: end the URL with the last node "
            "(redis+cluster://host1:6379,host2:6379)"
        )
    return RedisAddress(hosts=hosts, tls=tls, username=username, password=password, cluster=True)


def read_redis_settings(
    reader: Reader, raw: Any, redis_url: str | None, address: RedisAddress | None
) -> RedisSettings:
    """The ``[redis]`` table, checked against the URL it goes with (``address`` is None
    when ``redis_url`` is missing or already reported as invalid)."""
    table = reader.table(raw, "redis")
    names = (
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "sentinel_username",
        "sentinel_password",
    )
    reader.reject_unknown(table, "redis.", {*names, "wait_for_replica_ms", "key_layout"})
    values = {name: reader.text(table, name, f"redis.{name}", required=False) for name in names}
    wait = reader.count(table, "wait_for_replica_ms", "redis.wait_for_replica_ms", 0)
    if wait > MAX_WAIT_FOR_REPLICA_MS:
        reader.problem(
            "redis.wait_for_replica_ms",
            f"must be at most {MAX_WAIT_FOR_REPLICA_MS} (below the 2 s timeout of a Redis reply)",
        )
        wait = 0
    key_layout = reader.choice(table, "key_layout", "redis.key_layout", KEY_LAYOUTS)
    settings = RedisSettings(**values, wait_for_replica_ms=wait, key_layout=key_layout)
    if key_layout == KEY_LAYOUT_COMPATIBLE and address is not None and address.cluster:
        # Untagged keys put a token far from its family's slot: Cluster refuses the scripts.
        reader.problem(
            "redis.key_layout",
            '"compatible" cannot run on Redis Cluster (its keys are not hash-tagged); it is '
            "only for a rolling upgrade on one Redis or Sentinel: remove it",
        )

    for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        path = values[name]
        if path is not None and not Path(path).is_file():
            reader.problem(f"redis.{name}", "is not a file (a PEM file is expected)")
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        reader.problem(
            "redis.tls_cert_file", "and redis.tls_key_file go together (a certificate and its key)"
        )
    if settings.sentinel_username is not None and settings.sentinel_password is None:
        reader.problem("redis.sentinel_username", "needs redis.sentinel_password")

    given = [name for name in names if values[name] is not None]
    if given and not redis_url:
        reader.problem(f"redis.{given[0]}", "is set but redis_url is not")
    elif address is not None:
        tls_given = [name for name in given if name.startswith("tls_")]
        if tls_given and not address.tls:
            # Said out loud: an operator who set a CA file believes the traffic is encrypted.
            reader.problem(
                f"redis.{tls_given[0]}",
                "is only used with TLS: redis_url must start with rediss://, rediss+sentinel:// "
                "or rediss+cluster://",
            )
        sentinel_given = [name for name in given if name.startswith("sentinel_")]
        if sentinel_given and not address.uses_sentinel:
            reader.problem(
                f"redis.{sentinel_given[0]}",
                "is only used with Sentinel: redis_url must start with redis+sentinel://",
            )
    return settings


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    username, colon, password = userinfo.partition(":")
    if not colon:
        raise RedisUrlError(
            "the credentials must be ':password@' or 'user:password@' (a password alone "
            "needs the colon in front of it)"
        )
    if not password:
        raise RedisUrlError("has credentials with an empty password")
    return (unquote(username) or None), unquote(password)


def _split_remainder(remainder: str) -> tuple[str, str, str]:
    """(authority, path, query) of what follows the credentials."""
    if "#" in remainder:
        raise RedisUrlError("must not have a #fragment (percent-encode a '#' in a password)")
    before_query, _, query = remainder.partition("?")
    slash = before_query.find("/")
    if slash < 0:
        return before_query, "", query
    return before_query[:slash], before_query[slash:], query


def _query(query: str, allowed: set[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise RedisUrlError("has a query string that is not name=value pairs") from None
    unknown = sorted({name for name, _ in pairs} - allowed)
    if unknown:
        # Only the names: a value could be a secret.
        raise RedisUrlError(
            f"query parameters are not read here ({', '.join(unknown)}): the database goes "
            "in the path (/0), TLS files and Sentinel credentials in the [redis] section"
        )
    return dict(pairs)


def _host_and_port(item: str, default_port: int, index: int) -> tuple[str, int]:
    where = f"host {index}"
    if item.startswith("["):
        closing = item.find("]")
        host, port_text = item[1:closing], item[closing + 1 :]
        if closing < 0:
            raise RedisUrlError(f"{where} is not a valid [IPv6]:port")
        if port_text and not port_text.startswith(":"):
            raise RedisUrlError(f"{where} is not a valid [IPv6]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise RedisUrlError(f"{where} is not a valid IPv6 address") from None
        port_text = port_text[1:]
    else:
        host, _, port_text = item.partition(":")
        if not _HOST_NAME.fullmatch(host):
            raise RedisUrlError(f"{where} is not a host name or address")
    if not port_text:
        return host, default_port
    if not _DIGITS.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise RedisUrlError(f"{where}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _db(text: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise RedisUrlError("the database must be a number (0 to 15 on a default Redis)")
    return int(text)
