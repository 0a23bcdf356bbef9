"""bench/redis_round_trips.py keeps working and keeps sign-ins cheap: its count of commands
and round trips matches what a real redis-server counted, a pending flow stays small and
expires, and each step of a sign-in and of a refresh costs exactly the round trips and
commands pinned here, on one redis-server and on a Redis Cluster alike."""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from bench.redis_round_trips import Scenario, measure, report
from oidc_link.store import connect, keyspace
from tests.redis_cluster import RunningCluster

# (round trips, commands) of each step: a pipeline, a MULTI/EXEC block or a script is one
# round trip; the commands are those Redis ran (MULTI/EXEC and EVALSHA included, and each
# command a script ran). The client gets a refresh token with every code, as in bench.run.
# Exact on purpose: a change that costs more must say so here, one that saves must lower them.
# The bench runs the sandbox Link: its lookup and its SMS keep nothing in Redis (the handle
# it answers with carries the session, sealed), its code check reads what checking did to
# the session (a GET) in the lock's round trip and writes it (a SET) in the release's, for
# the session the form's token names (session 25; before, a script of its own: one round
# trip more). The live Link keeps its own sessions: a live provider makes as many round
# trips at the code step (2 commands fewer), as many at the email step.
RETURNING_USER = {
    "authorize": (1, 1),  # the flow
    # Lock + flow + the lookup's and the SMS's rate limits (one pipeline: the form's token
    # names the client), then flow + unlock; the code page's flow. The SMS's limits are on
    # three subjects (email and network, email, client): a script each since issue 17, as
    # each subject's counters share a hash slot of their own (2 EVALSHA more, no round trip).
    "email": (3, 15),
    # Lock + flow + the account (read ahead for the email and client the form's token
    # names) + the sandbox's state of the session the token names (GET), then one MULTI,
    # with the sandbox's new state (SET) riding at its end: SSO session, the session's set
    # (one SADD of the client and the token family, one EXPIRE: issue 16 round 2 folded
    # the family's own SADD and EXPIRE NX into the client's), code, the family bound to the
    # account (SADD, EXPIRE), how the flow ended, the flow removed and the unlock. The
    # account's read is two GETs (the email index and the account), not an MGET, since
    # issue 17: the two keys live in different hash slots on a cluster. For the same
    # reason the writes are a plain pipeline, not a MULTI (MULTI, EXEC gone), and each set's
    # SADD and EXPIRE one script on its key (3 EVALSHA: person's sessions, session's set,
    # account's families), and the flow's end one script (EVALSHA: its SET and DEL, so that
    # a full Redis that refuses the SET keeps the flow, as the MULTI did), queued first (the
    # single-use guard before what it guards), where the browser went noted after (a SET).
    "code": (2, 25),
    # One script (EVALSHA): take the code (GET, its spent mark and family, then DEL, so that
    # a full Redis refuses it before it spends anything), the access and refresh tokens
    # (SET, SET) and the family's longer life (EXPIRE GT).
    "token": (1, 8),
    "id-token check (JWKS)": (0, 0),
    # One MGET: the access token and its family, which the token names (since issue 17:
    # both in the family's hash slot; before, a script read the record for the family).
    "userinfo": (1, 1),
}
# A person's first sign-in: their email's two rate windows open (per network and across
# networks: one EXPIRE each), and their account is created with the code: one script
# (EVALSHA: EXISTS, and when there is none the account.created event's XADD to the
# account's outbox stream, then the SET; issue 18) and the owner's list (ZADD) in the
# same pipeline (before issue 18: SET NX and ZADD). The
# stream is announced first (a ZADD to the outbox index), one round trip more, paid only
# when the account is created: the announce must have landed before the XADD can, and on
# a cluster the pipeline's parts run in parallel, so it cannot ride in the writes.
FIRST_SIGN_IN = RETURNING_USER | {"email": (3, 17), "code": (3, 31)}
# A signed-in browser: the session read (GET); its renewal (SET) with the account read for
# the code's sub (two GETs since issue 17, as at the code step), one pipeline: that read needs
# the session's email; then the code's writes as at the code step, less the new session: the
# session remembers the client and the token family (one SADD, one EXPIRE), the code (SET),
# the family bound to the account (SADD, EXPIRE); a plain pipeline and two one-key scripts
# since issue 17, in place of a MULTI (as many commands). 3 is the floor without a stored layout
# changing: each round trip needs the answer of the one before it.
SSO = {
    "authorize": (3, 11),
    "token": (1, 8),
    "id-token check (JWKS)": (0, 0),
    "userinfo": (1, 1),  # as above: one MGET
}
# One script (EVALSHA): the refresh token, its family, the rotation mark (SET NX GET), the new
# access and refresh tokens (SET, SET) and the family's longer life (EXPIRE GT).
REFRESH = {"refresh": (1, 7)}


def costs(scenario: Scenario) -> dict[str, tuple[int, int]]:
    return {step.name: (step.round_trips, sum(step.counts().values())) for step in scenario.steps}


def test_sign_ins_and_refreshes_cost_the_pinned_round_trips_and_commands(
    redis_server_url: str,
) -> None:
    with redis.Redis.from_url(redis_server_url, decode_responses=True) as server:
        assert_pinned_costs(redis_server_url, server)


def test_on_redis_cluster_each_step_costs_the_round_trips_and_commands_of_one_server(
    redis_cluster: RunningCluster,
) -> None:
    # A pipeline the cluster client sends to each node holding its keys, writing to all
    # before it reads any answer, is one round trip; INFO is summed over the primaries.
    with connect(redis_cluster.url) as cluster:
        assert_pinned_costs(redis_cluster.url, cluster)


def assert_pinned_costs(redis_url: str, server: redis.Redis) -> None:
    """Measure on the Redis at ``redis_url`` (emptied first and after, through ``server``)
    and compare each step with the pins above."""
    empty(server)
    # measure() itself fails when any step's commands differ from INFO commandstats.
    newcomer, returning, sso, refresh = measure(redis_url, "openid email profile")

    assert costs(newcomer) == FIRST_SIGN_IN
    assert costs(returning) == RETURNING_USER
    assert costs(sso) == SSO
    assert costs(refresh) == REFRESH
    for scenario in (newcomer, returning):
        pending = scenario.pending["waiting for the code"]
        assert 0 < sum(pending.values()) < 4096
    # Whatever a pending flow left behind expires on its own.
    for key in server.scan_iter(match=keyspace.pattern("flow")):
        assert server.ttl(key) > 0, key
    for key in server.scan_iter(match=keyspace.pattern("rate")):
        assert server.ttl(key) > 0, key
    empty(server)

    printed = report([newcomer, returning, sso, refresh], show_commands=True)
    assert "signed-in browser (SSO session)" in printed
    assert "POST /token" in printed
    assert "EVALSHA" in printed


def empty(server: redis.Redis) -> None:
    if isinstance(server, RedisCluster):
        server.flushdb(target_nodes=RedisCluster.PRIMARIES)
    else:
        server.flushdb()
