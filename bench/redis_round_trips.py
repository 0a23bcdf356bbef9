"""``python -m bench.redis_round_trips``: what one sign-in costs in Redis, step by step.

Starts a throwaway redis-server, builds the provider on it with the production client
(``connect``), and walks whole sign-ins through the real pages in-process: authorize, email,
code, redirect, token exchange (+ ID-token check), userinfo; then one refresh grant. For each
step it prints the network round trips (a pipeline, a MULTI/EXEC block or a script is one;
on Redis Cluster too, where a pipeline is sent to each node holding its keys before any
answer is read) and the commands Redis ran (those the provider sent, plus those its Lua
scripts ran), all cross-checked against the server's ``INFO commandstats``, and the bytes one
pending flow occupies (``MEMORY USAGE`` of its keys). ``--commands`` also prints each step's
command sequence and flags a key read twice in one step. ``measure`` takes a
``redis+cluster://`` URL too (tests/test_redis_round_trips.py pins both). Needs the test
extras (the browser and relying party of tests/relying_party.py drive the pages).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
import redis
from redis.cluster import RedisCluster

from bench.processes import RedisServer
from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from oidc_link.store import accounts as store_accounts
from oidc_link.store import base as store_base
from oidc_link.store import connect, keyspace, token_scripts
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code

ISSUER = "https://login.example.test"
CALLBACK = "https://shop.example.test/callback"
CLIENT_SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a loopback-only benchmark
RETURNING = "returning@example.com"
NEWCOMER = "newcomer@example.com"
# Commands that only read: reading a key the step already read or wrote is a round trip
# that the earlier answer (or the value written) could have saved.
READS = {"GET", "HGET", "HGETALL", "MGET", "SMEMBERS", "EXISTS", "TTL", "ZRANGE", "SISMEMBER"}
PACKAGE = str(Path(__file__).resolve().parent.parent / "oidc_link")
# The frames skipped to find who asked for a command: the store package (client included).
PLUMBING = PACKAGE + "/store/"


def _script_commands() -> dict[str, set[str]]:
    """The Lua scripts of the store, by SHA-1 (what EVALSHA names): the commands each may run.

    Redis counts a script's own commands in INFO commandstats, as it runs them: a script is
    one round trip, but as many commands as it runs.
    """
    scripts = {}
    values = [
        *vars(store_base).values(),
        *vars(token_scripts).values(),
        *vars(store_accounts).values(),  # ADD_RECORD: a first sign-in's account and its event
    ]
    for value in values:
        if isinstance(value, str) and "redis.call(" in value:
            sha = hashlib.sha1(value.encode()).hexdigest()  # noqa: S324 - Redis's script id
            scripts[sha] = {name.upper() for name in re.findall(r"redis\.call\('(\w+)'", value)}
    return scripts


SCRIPT_COMMANDS = _script_commands()


# What a primary's replicas send it on their own (REPLCONF ACK once a second, a resync):
# counted in its INFO commandstats, but never a command of ours.
REPLICATION_COMMANDS = frozenset({"REPLCONF", "PSYNC", "SYNC"})


@dataclass(frozen=True)
class Command:
    name: str
    key: str  # "" for a command without one
    # Where in oidc_link the store method was called from, and from where that was called.
    caller: str
    # Which HTTP request of the step sent it (0, 1, ...).
    request: int


def _caller() -> str:
    """The three innermost oidc_link frames outside the store: 'a.py:1 < b.py:2 < c.py:3'."""
    frames = [
        f"{frame.filename.removeprefix(PACKAGE + '/')}:{frame.lineno}"
        for frame in reversed(traceback.extract_stack())
        if frame.filename.startswith(PACKAGE) and not frame.filename.startswith(PLUMBING)
    ]
    return " < ".join(frames[:3]) or "?"


@dataclass
class Step:
    name: str
    round_trips: int = 0
    commands: list[Command] = field(default_factory=list)
    # The HTTP requests the step made (method and path), in order.
    requests: list[str] = field(default_factory=list)
    # What the server counted for this step (INFO commandstats delta), by command.
    server_counts: Counter[str] = field(default_factory=Counter)
    # The commands the provider's scripts ran (the server's count less what was sent).
    script_counts: Counter[str] = field(default_factory=Counter)

    def sent(self) -> Counter[str]:
        return Counter(command.name for command in self.commands)

    def counts(self) -> Counter[str]:
        """The commands Redis ran: those sent, and those the scripts ran."""
        return self.sent() + self.script_counts

    def check_against_server(self) -> None:
        """Fail unless the server ran what was sent, plus only what the scripts sent may run."""
        sent = self.sent()
        if sent - self.server_counts:
            raise RuntimeError(f"{self.name}: sent {dict(sent)}, server: {self.server_counts}")
        scripts = [c.key for c in self.commands if c.name == "EVALSHA"]
        allowed = set().union(*(SCRIPT_COMMANDS.get(sha, set()) for sha in scripts))
        extra = self.server_counts - sent
        if set(extra) - allowed:
            raise RuntimeError(
                f"{self.name}: the server ran {dict(extra)} more than was sent, "
                f"scripts {len(scripts)} may run only {sorted(allowed)}"
            )
        self.script_counts = extra

    def repeated_reads(self) -> list[Command]:
        """Reads of a key that the same HTTP request had already read or written."""
        seen: set[tuple[int, str]] = set()
        repeated = []
        for command in self.commands:
            if command.name in READS and (command.request, command.key) in seen:
                repeated.append(command)
            if command.key and command.name != "WATCH":
                seen.add((command.request, command.key))
        return repeated


class Journal:
    """What the provider's Redis client sent, step by step."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        # Sent, and no answer read since: a send now goes out in the same round trip (a
        # cluster pipeline writes to each of its nodes, then reads each node's answers).
        self.awaiting = False

    @property
    def current(self) -> Step | None:
        return self.steps[-1] if self.steps else None


def counting_connection(journal: Journal) -> type[redis.Connection]:
    """A redis-py Connection that records into ``journal``: a send after an answer was read
    is one round trip (one server: each send; a cluster: each send to the first node of a
    pipeline, whose other nodes' sends go out before any answer is awaited)."""

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if journal.current is not None and not journal.awaiting:
                journal.current.round_trips += 1
            journal.awaiting = True
            super().send_packed_command(command, check_health)

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            journal.awaiting = False
            return super().read_response(*args, **kwargs)

        def send_command(self, *args: Any, **kwargs: Any) -> None:
            self._record([args])
            super().send_command(*args, **kwargs)

        def pack_commands(self, commands: Any) -> Any:
            commands = list(commands)
            self._record(commands)
            return super().pack_commands(commands)

        @staticmethod
        def _record(commands: list[Any]) -> None:
            if journal.current is None:
                return
            caller = _caller()
            step = journal.current
            for arguments in commands:
                name = str(arguments[0]).upper()
                key = str(arguments[1]) if len(arguments) > 1 else ""
                step.commands.append(Command(name, key, caller, len(step.requests) - 1))

    return CountingConnection


def count_into(journal: Journal, client: redis.Redis) -> None:
    """Make every connection ``client`` opens record into ``journal``: before the first
    command for one server; for a cluster, its nodes' pools (emptied, so that each connection
    is a counting one) and those of nodes it finds later."""
    connection_class = counting_connection(journal)
    if not isinstance(client, RedisCluster):
        client.connection_pool.connection_class = connection_class
        return
    client.nodes_manager.connection_kwargs["connection_class"] = connection_class
    for node in client.get_nodes():
        pool = node.redis_connection.connection_pool
        pool.connection_class = connection_class
        pool.reset()


def provider_config() -> dict[str, Any]:
    return {
        "issuer": ISSUER,
        "subject_salt": "bench-subject-salt",
        # Set, so that the sandbox counts sent SMS as a live provider does (the defaults).
        "limits": {"sms_per_email": 5, "sms_per_email_ceiling": 10, "client_daily_sms": 10_000},
        "link": {
            "mode": "sandbox",
            "sandbox": {
                "users": [
                    {"email": RETURNING, "phone": "+14155550123", "name": "Rita Returning"},
                    {"email": NEWCOMER, "phone": "+14155550124", "name": "Nina Newcomer"},
                ]
            },
        },
        "clients": [
            {
                "client_id": "shop",
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [CALLBACK],
                "name": "Example Shop",
                # As in bench.run: every code exchange gives a refresh token.
                "refresh_tokens": True,
            }
        ],
    }


@dataclass
class Scenario:
    title: str
    steps: list[Step]
    # Bytes and keys of one pending flow: after authorize, and while waiting for the code.
    pending: dict[str, dict[str, int]] = field(default_factory=dict)
    # The browser, signed in at the end: the next sign-in may reuse its SSO session.
    browser: Browser | None = None
    # The relying party and the tokens it got, for a refresh grant after the sign-in.
    rp: RelyingParty | None = None
    token: dict[str, Any] = field(default_factory=dict)


class Measurement:
    """The provider on a real redis-server, with a counting client and a stats reader."""

    def __init__(self, redis_url: str, scope: str, config: dict[str, Any] | None = None) -> None:
        settings = settings_from_mapping(config or provider_config(), {}, "bench")
        self.journal = Journal()
        client = connect(redis_url)
        count_into(self.journal, client)
        self.console: list[str] = []
        # Now, and standing still: every rate-limit window of the run is the same one, so
        # the counts do not depend on when a window happens to roll over.
        services = build_services(
            settings,
            clock=FixedClock(int(time.time())),
            redis_client=client,
            announce=self.console.append,
        )
        self.app = create_app(settings, services)
        self.app.before_request(self._request_began)
        self.scope = scope
        # On a cluster, a client of its own: INFO from every primary, SCAN over all of them.
        self.stats: redis.Redis = (
            connect(redis_url)
            if isinstance(client, RedisCluster)
            else redis.Redis.from_url(redis_url, decode_responses=True)
        )
        # How many servers the last _server_counts read INFO from (each counts its INFO).
        self.servers_read = 1

    def _request_began(self) -> None:
        if self.journal.current is not None:
            self.journal.current.requests.append(f"{flask.request.method} {flask.request.path}")

    def _server_counts(self) -> Counter[str]:
        """INFO commandstats, summed over a cluster's primaries (where the commands run)."""
        if isinstance(self.stats, RedisCluster):
            answers = self.stats.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
            infos = list(answers.values())
        else:
            infos = [self.stats.info("commandstats")]
        self.servers_read = len(infos)
        counts: Counter[str] = Counter()
        for info in infos:
            for name, value in info.items():
                command = name.removeprefix("cmdstat_").upper()
                if command not in REPLICATION_COMMANDS:
                    counts[command] += int(value["calls"])
        return counts

    def _keys(self) -> set[str]:
        return set(self.stats.scan_iter(match=keyspace.pattern(), count=1000))

    def _bytes_by_kind(self, keys: set[str]) -> dict[str, int]:
        sizes: Counter[str] = Counter()
        for key in keys:
            kind = keyspace.kind_of(key)
            sizes[kind] += self.stats.memory_usage(key, samples=0) or 0
        return dict(sorted(sizes.items()))

    @contextmanager
    def step(self, steps: list[Step], name: str) -> Iterator[None]:
        step = Step(name)
        before = self._server_counts()
        self.journal.steps.append(step)
        steps.append(step)
        try:
            yield
        finally:
            self.journal.steps.append(Step("(measuring)"))
            after = self._server_counts()
            step.server_counts = after - before
            # The INFO that read "after" ran on each server before it answered.
            step.server_counts["INFO"] -= self.servers_read
            step.server_counts = +step.server_counts

    def sign_in(self, title: str, email: str, browser: Browser | None = None) -> Scenario:
        """One sign-in through the pages; with a signed-in ``browser``, the SSO path."""
        steps: list[Step] = []
        scenario = Scenario(title, steps)
        rp = RelyingParty(self.app, ISSUER, "shop", CALLBACK, CLIENT_SECRET, scope=self.scope)
        request = rp.authorization_request()
        signed_in = browser is not None
        browser = browser or Browser(self.app, ISSUER)
        keys_before = self._keys()
        with self.step(steps, "authorize"):
            answer = browser.start(request.url)
        if not signed_in:
            scenario.pending["after authorize"] = self._bytes_by_kind(self._keys() - keys_before)
            with self.step(steps, "email"):
                browser.submit("/email", email=email)
            scenario.pending["waiting for the code"] = self._bytes_by_kind(
                self._keys() - keys_before
            )
            code = announced_code(self.console)
            with self.step(steps, "code"):
                answer = browser.submit("/code", code=code)
        if answer.status_code != 302 or not answer.headers["Location"].startswith(CALLBACK):
            raise RuntimeError(f"{title}: the sign-in did not return to the client")
        callback = answer.headers["Location"]
        with self.step(steps, "token"):
            token = rp.exchange(callback, request)
        with self.step(steps, "id-token check (JWKS)"):
            rp.validate_id_token(token, request.nonce)
        with self.step(steps, "userinfo"):
            reply = rp.session.get(rp.metadata["userinfo_endpoint"])
            if reply.status_code != 200:
                raise RuntimeError(f"userinfo answered {reply.status_code}")
        scenario.browser = browser
        scenario.rp = rp
        scenario.token = token
        return scenario

    def refresh(self, title: str, signed_in: Scenario) -> Scenario:
        """One refresh grant with the refresh token of ``signed_in`` (which it rotates)."""
        steps: list[Step] = []
        rp = signed_in.rp
        if rp is None or "refresh_token" not in signed_in.token:
            raise RuntimeError(f"{title}: the sign-in gave no refresh token")
        with self.step(steps, "refresh"):
            token = rp.session.refresh_token(
                rp.metadata["token_endpoint"], refresh_token=signed_in.token["refresh_token"]
            )
        if "id_token" not in token or token["refresh_token"] == signed_in.token["refresh_token"]:
            raise RuntimeError(f"{title}: the refresh did not rotate the token")
        return Scenario(title, steps)


def measure(redis_url: str, scope: str) -> list[Scenario]:
    """Warm up (keys, first account, scripts loaded), then measure three kinds of sign-in
    and a refresh grant."""
    return measure_with(Measurement(redis_url, scope))


def measure_with(measurement: Measurement) -> list[Scenario]:
    """As ``measure``, on a measurement built elsewhere (bench.sizing's also counts bytes)."""
    warm_up = measurement.sign_in("warm-up", RETURNING)
    measurement.refresh("warm-up", warm_up)
    newcomer = measurement.sign_in("first sign-in of a new user", NEWCOMER)
    returning = measurement.sign_in("returning user, new browser", RETURNING)
    sso = measurement.sign_in(
        "signed-in browser (SSO session)",
        RETURNING,
        browser=returning.browser,
    )
    refresh = measurement.refresh("refresh grant", returning)
    for scenario in (newcomer, returning, sso, refresh):
        for step in scenario.steps:
            try:
                step.check_against_server()
            except RuntimeError as error:
                raise RuntimeError(f"{scenario.title}/{error}") from None
    return [newcomer, returning, sso, refresh]


def _short(key: str) -> str:
    """A key without the prefix, ids and digests cut to 8 characters."""
    kind, *parts = key.removeprefix(keyspace.PREFIX).split(":")
    return ":".join([kind] + [part if len(part) <= 12 else part[:8] + "…" for part in parts])


def report(scenarios: list[Scenario], show_commands: bool) -> str:
    lines: list[str] = []
    for scenario in scenarios:
        lines.append(f"\n## {scenario.title}\n")
        lines.append(
            f"{'step':22} {'HTTP':>4} {'round trips':>11} {'commands':>8}  by command "
            "(run by Redis, scripts' own commands included)"
        )
        total_http = total_trips = total_commands = 0
        for step in scenario.steps:
            counts = step.counts()
            total_http += len(step.requests)
            total_trips += step.round_trips
            total_commands += sum(counts.values())
            by_command = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            lines.append(
                f"{step.name:22} {len(step.requests):>4} {step.round_trips:>11} "
                f"{sum(counts.values()):>8}  {by_command}"
            )
        lines.append(f"{'total':22} {total_http:>4} {total_trips:>11} {total_commands:>8}")
        for moment, sizes in scenario.pending.items():
            listed = ", ".join(f"{kind} {size}" for kind, size in sizes.items())
            lines.append(f"pending flow, {moment}: {sum(sizes.values())} bytes ({listed})")
        for step in scenario.steps:
            for command in step.repeated_reads():
                lines.append(
                    f"already known in '{step.name}': {command.name} {_short(command.key)} "
                    f"from {command.caller}"
                )
        if show_commands:
            for step in scenario.steps:
                for index, request in enumerate(step.requests):
                    lines.append(f"\n{step.name}: {request}")
                    lines.extend(
                        f"  {c.name:8} {_short(c.key):40} {c.caller}"
                        for c in step.commands
                        if c.request == index
                    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scope", default="openid email profile", help="the RP's scope")
    parser.add_argument("--commands", action="store_true", help="print each step's commands")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(Path(workdir), "round-trips")
        try:
            scenarios = measure(server.url, args.scope)
        finally:
            server.stop()
    print(f"Redis round trips per sign-in (scope: {args.scope}); the server's")
    print("INFO commandstats agreed with every count below (a script is one round trip")
    print("and, like EVALSHA, each command it runs is a command).")
    print(report(scenarios, args.commands))
    return 0


if __name__ == "__main__":
    sys.exit(main())
