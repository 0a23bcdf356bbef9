"""Spending a single-use thing only once a replica has it (``[redis] wait_for_replica_ms``).

Runs the spending script and ``WAIT 1`` in one round trip on one connection, so that a
failover cannot bring back a code or refresh token the primary had spent but not replicated.
Knows nothing of what the script spends: store/tokens.py decides that.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import redis

from oidc_link.errors import StoreUnavailableError
from oidc_link.store.base import STORE_ERRORS

# How a cluster node says a command's slot is served elsewhere, or not now: nothing ran.
# (MovedError is an AskError; a WAIT beside it answered for the wrong node.)
_ELSEWHERE = (
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


def spend_on_a_replica(
    client: Any, script: Any, keys: list[str], args: list[Any], wait_ms: int
) -> Any:
    """The script's answer once a replica acknowledged its writes within ``wait_ms``; a 503
    (StoreUnavailableError, cause ``no_replica``) when none did: asynchronous replication
    would lose the spend with a failover, and it could be used again."""
    answer, replicas = _run_and_wait(client, script, keys, args, wait_ms)
    if replicas < 1:
        raise StoreUnavailableError(
            "no Redis replica acknowledged a spent code or refresh token in time",
            cause="no_replica",
        )
    return answer


def _run_and_wait(
    client: Any, script: Any, keys: list[str], args: list[Any], wait_ms: int
) -> tuple[Any, int]:
    """The script and ``WAIT 1`` in one pipeline on ONE connection: WAIT counts the
    replicas that have this connection's writes. On a cluster that connection is one to
    the slot's primary, not the cluster client's: its pipeline names WAIT's node before
    sending and, after a failover or a moved slot, re-sends the script elsewhere alone."""
    cluster = isinstance(client, redis.RedisCluster)
    for _ in range(3):
        node = client.get_node_from_key(keys[0]).redis_connection if cluster else client
        pipeline = node.pipeline(transaction=False)
        pipeline.evalsha(script.sha, len(keys), *keys, *args)
        pipeline.execute_command("WAIT", 1, wait_ms)
        try:
            answer, replicas = pipeline.execute(raise_on_error=False)
        except redis.ConnectionError:
            if cluster:  # the primary is gone: learn the slot map again for the retry
                _learn_slot_map(client)
            raise
        if isinstance(answer, _ELSEWHERE):
            # The slot moved (or is failing over) since the map was read: nothing ran.
            _learn_slot_map(client)
        elif isinstance(answer, redis.exceptions.NoScriptError) and replicas != 0:
            # First use on this server (new, restarted, just promoted): load it, run again.
            node.script_load(script.script)
        else:
            break
    else:
        raise StoreUnavailableError("no primary took a token's spend", cause="unreachable")
    if replicas == 0:
        return answer, 0  # refused, whatever the script answered: nothing is handed out
    for result in (answer, replicas):
        if isinstance(result, Exception):
            raise result
    return answer, replicas


def _learn_slot_map(client: Any) -> None:
    """Have the cluster client read the slot map again, as it does itself when one of its
    own commands meets a dead node or MOVED; best effort (the caller answers 503 anyway,
    and the client tries again at its next command if this fails)."""
    with suppress(*STORE_ERRORS, redis.exceptions.RedisClusterException):
        client.nodes_manager.initialize()
