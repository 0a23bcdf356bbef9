"""``python -m bench.sizing``: what one Redis primary carries, measured on a real redis-server.

Per operation (a first sign-in, a returning user's, an SSO sign-in, a refresh grant, a sign-in
left waiting for its code): the round trips and commands (bench.redis_round_trips counts
them), the bytes the server read and wrote (INFO stats, the measuring INFO's own bytes taken
out), and the server's CPU over rounds of batches of such operations (INFO cpu, the idle
server's own taken out). Then memory: ``MEMORY USAGE`` by kind of what a user's first sign-in
leaves, averaged over a batch of users, and the growth of ``used_memory`` per 1,000 users
(right after, and once the hour-long keys are gone) and per 1,000 pending sign-ins.
docs/operations.md "Sizing" turns these into sign-ins/s per primary and memory per N users.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.connection import parse_url

from bench.processes import RedisServer
from bench.redis_round_trips import (
    CALLBACK,
    CLIENT_SECRET,
    ISSUER,
    Measurement,
    Scenario,
    Step,
    measure_with,
    provider_config,
)
from oidc_link.store import keyspace
from tests.relying_party import Browser, RelyingParty

PARTNER = "partner"
PARTNER_CALLBACK = "https://partner.example.test/callback"
PARTNER_SECRET = "bench-partner-secret-0123456789abcdef"  # noqa: S105 - a loopback benchmark
# The user whose consent to the third-party client and pending sign-in are sized, last.
SIZED = "sized@example.com"
# One core of Redis at this utilisation is what a primary is planned to carry: headroom for
# bursts, expiry, persistence forks and replication.
SAFE_UTILISATION = 0.65
# docs/performance.md "Again after issue 16's levers (b1347ea)": bench.run's full sign-ins
# per second at 32 users, one provider with 2 workers on 2 shared cores.
INSTANCE_SIGN_INS_PER_S = 233.0
REPOSITORY = Path(__file__).resolve().parent.parent
# Keys that live longer than this outlive the sign-in (its flow's note, spent code and access
# token last an hour or so): they are what an active user keeps.
LASTING = 2 * 3600


OPERATIONS = (
    "first sign-in (new user)",
    "returning user, new browser",
    "SSO sign-in (signed-in browser)",
    "refresh grant",
    "pending sign-in (waiting for the code)",
)
# What bench.run's sign-in rate per instance (INSTANCE_SIGN_INS_PER_S) compares with.
FULL_SIGN_INS = OPERATIONS[:2]


def user_email(index: int) -> str:
    """The users of the CPU batches."""
    return f"user{index}@example.com"


def kept_email(index: int) -> str:
    """The users whose memory is measured: each signs in once."""
    return f"kept{index}@example.com"


def sizing_config(users: int) -> dict[str, Any]:
    """bench.redis_round_trips's provider with 2 x ``users`` more sandbox users, a third-party
    client (a consent is part of what a user keeps), and the per-network lookup limit
    raised: every sign-in here comes from one address."""
    config = provider_config()
    config["limits"]["lookups_per_ip"] = 1_000_000_000
    config["link"]["sandbox"]["users"] += [
        {"email": email, "phone": f"+1415556{index:04d}", "name": f"User {index}"}
        for index, email in enumerate(
            [SIZED, *map(user_email, range(users)), *map(kept_email, range(users))]
        )
    ]
    config["clients"].append(
        {
            "client_id": PARTNER,
            "client_secret": PARTNER_SECRET,
            "redirect_uris": [PARTNER_CALLBACK],
            "name": "Partner App",
            "third_party": True,
        }
    )
    return config


@dataclass(frozen=True)
class Snapshot:
    """One INFO reply: the server's running totals, and how many bytes that INFO itself took."""

    fields: dict[str, str]
    calls: Counter[str]
    request_bytes: int
    reply_bytes: int
    taken_at: float  # time.monotonic()

    def number(self, name: str) -> float:
        return float(self.fields[name])

    def cpu_seconds(self) -> float:
        return self.number("used_cpu_user") + self.number("used_cpu_sys")


@dataclass(frozen=True)
class Traffic:
    """What the server did between two snapshots, the measuring INFO calls taken out."""

    commands: int
    bytes_in: int
    bytes_out: int
    cpu_ms: float
    seconds: float
    used_memory: int

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot) -> Traffic:
        # Redis counts a request's bytes when it reads them, before running it, and a reply's
        # when it writes them, after: so the later INFO's request and the earlier INFO's reply
        # fall in between, and so does the earlier INFO in commandstats.
        read = after.number("total_net_input_bytes") - before.number("total_net_input_bytes")
        written = after.number("total_net_output_bytes") - before.number("total_net_output_bytes")
        return cls(
            commands=sum((after.calls - before.calls).values()) - 1,
            bytes_in=int(read) - after.request_bytes,
            bytes_out=int(written) - before.reply_bytes,
            cpu_ms=(after.cpu_seconds() - before.cpu_seconds()) * 1000,
            seconds=after.taken_at - before.taken_at,
            used_memory=int(after.number("used_memory") - before.number("used_memory")),
        )


class ServerStats:
    """Reads INFO on a connection of its own (RESP2), so each read's own size is known."""

    SECTIONS = ("stats", "cpu", "memory", "commandstats")

    def __init__(self, redis_url: str) -> None:
        self._connection = redis.Connection(**parse_url(redis_url), protocol=2)
        self._request = len(b"".join(self._connection.pack_command("INFO", *self.SECTIONS)))

    def snapshot(self) -> Snapshot:
        self._connection.send_command("INFO", *self.SECTIONS)
        body: bytes = self._connection.read_response()
        fields: dict[str, str] = {}
        calls: Counter[str] = Counter()
        for line in body.decode().splitlines():
            name, _, value = line.partition(":")
            if line.startswith("cmdstat_"):
                stats = dict(item.split("=") for item in value.split(","))
                calls[name.removeprefix("cmdstat_").upper()] = int(stats["calls"])
            elif value:
                fields[name] = value
        # A RESP2 bulk string: "$<length>\r\n<body>\r\n".
        reply = len(body) + len(str(len(body))) + 5
        return Snapshot(fields, calls, self._request, reply, time.monotonic())

    def close(self) -> None:
        self._connection.disconnect()


class SizingMeasurement(Measurement):
    """bench.redis_round_trips's measurement, whose per-step INFO also reads bytes and CPU,
    and which runs batches of operations with no measuring command between them."""

    def __init__(self, redis_url: str, scope: str, users: int) -> None:
        super().__init__(redis_url, scope, sizing_config(users))
        self.server = ServerStats(redis_url)
        self.snapshots: list[Snapshot] = []
        self.traffic: dict[int, Traffic] = {}  # by id() of the Step
        self.quiet = False

    def _server_counts(self) -> Counter[str]:
        """The step's one INFO: commandstats for the counts, with the bytes and CPU."""
        snapshot = self.server.snapshot()
        self.snapshots.append(snapshot)
        return snapshot.calls

    def _keys(self) -> set[str]:
        # In a batch, no SCAN: its cost would count as the operations'.
        return set() if self.quiet else super()._keys()

    @contextmanager
    def step(self, steps: list[Step], name: str) -> Iterator[None]:
        if self.quiet:
            steps.append(Step(name))
            yield
            return
        with super().step(steps, name):
            yield
        self.traffic[id(steps[-1])] = Traffic.between(*self.snapshots[-2:])

    def batch(
        self, operation: Callable[[int], Scenario], count: int
    ) -> tuple[list[Scenario], Traffic]:
        """``operation(0..count-1)`` with nothing counted or measured between: the server's
        totals before and after them all."""
        self.journal.steps.clear()  # the counting client records nothing while it is empty
        self.quiet = True
        try:
            before = self.server.snapshot()
            scenarios = [operation(index) for index in range(count)]
            after = self.server.snapshot()
        finally:
            self.quiet = False
        return scenarios, Traffic.between(before, after)

    def pending(self, title: str, email: str) -> Scenario:
        """A sign-in left where the person waits for the SMS code: authorize, email."""
        steps: list[Step] = []
        rp = RelyingParty(self.app, ISSUER, "shop", CALLBACK, CLIENT_SECRET, scope=self.scope)
        browser = Browser(self.app, ISSUER)
        with self.step(steps, "authorize"):
            browser.start(rp.authorization_request().url)
        with self.step(steps, "email"):
            browser.submit("/email", email=email)
        if not any(form.get("action", "").endswith("/code") for form in browser.soup()("form")):
            raise RuntimeError(f"{title}: the email step did not show the code page")
        return Scenario(title, steps, browser=browser)

    def consent(self, title: str, signed_in: Scenario) -> Scenario:
        """The signed-in browser of ``signed_in`` allows the third-party client (SSO, then
        the consent page)."""
        steps: list[Step] = []
        rp = RelyingParty(
            self.app, ISSUER, PARTNER, PARTNER_CALLBACK, PARTNER_SECRET, scope=self.scope
        )
        browser = signed_in.browser
        if browser is None:
            raise RuntimeError(f"{title}: no signed-in browser")
        with self.step(steps, "authorize"):
            browser.start(rp.authorization_request().url)
        with self.step(steps, "allow"):
            answer = browser.submit("/allow")
        if answer.status_code != 302 or not answer.headers["Location"].startswith(PARTNER_CALLBACK):
            raise RuntimeError(f"{title}: allowing did not return to the client")
        return Scenario(title, steps, browser=browser)

    def usage_by_key(self) -> dict[str, tuple[int, int]]:
        """Every key of ours: (MEMORY USAGE in bytes, TTL in seconds; -1 for none)."""
        keys = sorted(super()._keys())
        pipeline = self.stats.pipeline(transaction=False)
        for key in keys:
            pipeline.memory_usage(key, samples=0)
            pipeline.ttl(key)
        answers = pipeline.execute()
        return {
            key: (answers[2 * index] or 0, answers[2 * index + 1]) for index, key in enumerate(keys)
        }


@dataclass(frozen=True)
class OperationCost:
    """One operation: counted exactly once, and its server CPU averaged over a batch."""

    operation: str
    http_requests: int
    round_trips: int
    commands: int
    bytes_in: int
    bytes_out: int
    batch_size: int  # operations of this kind in all rounds' batches
    # Per operation, from the batches' totals: cross-checks of the exact figures.
    batch_commands: float
    batch_bytes_in: float
    batch_bytes_out: float
    # Redis CPU per operation, the idle server's own CPU taken out: the median of the rounds,
    # and the lowest and highest round.
    cpu_us: float
    cpu_us_range: tuple[float, float]


@dataclass(frozen=True)
class KindMemory:
    """The keys of one kind an operation left, per operation (MEMORY USAGE)."""

    kind: str
    keys: float  # new keys
    bytes: int  # new keys' bytes, and what existing keys grew by
    ttl: int  # the longest TTL among its keys, seconds; -1 for keys kept until deleted


@dataclass
class Sizing:
    redis_version: str
    commit: str
    users: int
    rounds: int
    idle_cpu_ms_per_s: float
    operations: list[OperationCost] = field(default_factory=list)
    # What a user's first sign-in (with a refresh token) left in Redis, on average, and a
    # consent to a third-party client; what a sign-in waiting for its code holds.
    user_memory: list[KindMemory] = field(default_factory=list)
    consent_memory: list[KindMemory] = field(default_factory=list)
    pending_memory: list[KindMemory] = field(default_factory=list)
    # used_memory growth per 1,000 users: right after their first sign-in, and what is left
    # once the keys that last LASTING or less are gone; per 1,000 pending sign-ins.
    used_memory_per_1000_users: int = 0
    used_memory_per_1000_users_kept: int = 0
    used_memory_per_1000_pending: int = 0

    def operation(self, name: str) -> OperationCost:
        return next(cost for cost in self.operations if cost.operation == name)


def _memory_by_kind(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], operations: int = 1
) -> list[KindMemory]:
    """What changed between two ``usage_by_key`` answers, by kind, per operation (grown keys
    count their growth; removed keys count negative)."""
    keys: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    ttls: dict[str, int] = {}
    for key in before.keys() | after.keys():
        size, ttl = after.get(key, (0, -2))
        grown = size - before.get(key, (0, -2))[0]
        if grown == 0:
            continue
        kind = keyspace.kind_of(key)
        keys[kind] += 1 if key not in before else 0
        sizes[kind] += grown
        if ttl != -2:
            kept = ttls.get(kind, ttl)
            ttls[kind] = -1 if -1 in (kept, ttl) else max(kept, ttl)
    return [
        KindMemory(kind, keys[kind] / operations, round(sizes[kind] / operations), ttls[kind])
        for kind in sorted(sizes)
        if kind in ttls
    ]


def _commit() -> str:
    try:
        answer = subprocess.run(
            ["git", "-C", str(REPOSITORY), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return answer.stdout.strip()


def measure_sizing(
    redis_url: str,
    users: int,
    rounds: int = 4,
    scope: str = "openid email profile",
    idle_seconds: float = 1.0,
) -> Sizing:
    """Every figure of the sizing, on the (empty) Redis at ``redis_url``: ``users`` of each
    operation, in ``rounds`` rounds of one batch per operation."""
    if not 1 <= rounds <= users:
        raise ValueError("rounds must be between 1 and the number of users")
    measurement = SizingMeasurement(redis_url, scope, users)
    try:
        return _measure(measurement, users // rounds, rounds, idle_seconds)
    finally:
        measurement.server.close()


def _round(measurement: SizingMeasurement, emails: list[str]) -> list[Traffic]:
    """One batch of each of OPERATIONS, in order, by the users of ``emails``: their first
    sign-in, a returning one from a new browser, an SSO one with that browser, a refresh
    grant, and a sign-in left waiting for its code."""
    count = len(emails)
    _, first = measurement.batch(lambda i: measurement.sign_in("first", emails[i]), count)
    returns, returning = measurement.batch(
        lambda i: measurement.sign_in("returning", emails[i]), count
    )
    _, sso = measurement.batch(
        lambda i: measurement.sign_in("sso", emails[i], browser=returns[i].browser), count
    )
    _, refresh = measurement.batch(lambda i: measurement.refresh("refresh", returns[i]), count)
    _, pending = measurement.batch(lambda i: measurement.pending("pending", emails[i]), count)
    return [first, returning, sso, refresh, pending]


def _measure(
    measurement: SizingMeasurement, per_round: int, rounds: int, idle_seconds: float
) -> Sizing:
    # The exact scenarios, step by step, as bench.redis_round_trips measures them.
    newcomer, returning, sso, refresh = measure_with(measurement)
    exact = [newcomer, returning, sso, refresh, Scenario("pending", returning.steps[:2])]

    before = measurement.server.snapshot()
    time.sleep(idle_seconds)
    idle = Traffic.between(before, measurement.server.snapshot())
    users = per_round * rounds
    sizing = Sizing(
        redis_version=measurement.stats.info("server")["redis_version"],
        commit=_commit(),
        users=users,
        rounds=rounds,
        idle_cpu_ms_per_s=idle.cpu_ms / idle.seconds,
    )
    # Rounds, so that the machine's drift spreads over every operation alike.
    by_round = [
        _round(measurement, [user_email(r * per_round + i) for i in range(per_round)])
        for r in range(rounds)
    ]
    for index, (name, scenario) in enumerate(zip(OPERATIONS, exact, strict=True)):
        traffic = [measurement.traffic[id(step)] for step in scenario.steps]
        batches = [batches[index] for batches in by_round]
        cpu_us = sorted(
            max(b.cpu_ms - sizing.idle_cpu_ms_per_s * b.seconds, 0.0) * 1000 / per_round
            for b in batches
        )
        sizing.operations.append(
            OperationCost(
                operation=name,
                http_requests=sum(len(step.requests) for step in scenario.steps),
                round_trips=sum(step.round_trips for step in scenario.steps),
                commands=sum(sum(step.counts().values()) for step in scenario.steps),
                bytes_in=sum(t.bytes_in for t in traffic),
                bytes_out=sum(t.bytes_out for t in traffic),
                batch_size=users,
                batch_commands=sum(b.commands for b in batches) / users,
                batch_bytes_in=sum(b.bytes_in for b in batches) / users,
                batch_bytes_out=sum(b.bytes_out for b in batches) / users,
                cpu_us=statistics.median(cpu_us),
                cpu_us_range=(cpu_us[0], cpu_us[-1]),
            )
        )
    pending = sum(batches[-1].used_memory for batches in by_round)
    sizing.used_memory_per_1000_pending = round(pending * 1000 / users)
    _measure_memory(measurement, sizing)
    return sizing


def _measure_memory(measurement: SizingMeasurement, sizing: Sizing) -> None:
    """More users' first sign-ins, key by key; then what is left of them once the keys that
    last an hour or so are gone (deleted here, as expiry would). Then one user's consent to
    a third-party client and a sign-in of theirs waiting for its code."""
    users = sizing.users
    before = measurement.usage_by_key()
    _, signed_in = measurement.batch(lambda i: measurement.sign_in("kept", kept_email(i)), users)
    after = measurement.usage_by_key()
    sizing.user_memory = _memory_by_kind(before, after, users)
    passing = [key for key, (_, ttl) in after.items() if key not in before and 0 <= ttl <= LASTING]
    expiry_began = measurement.server.snapshot()
    for start in range(0, len(passing), 1000):
        measurement.stats.delete(*passing[start : start + 1000])
    expired = Traffic.between(expiry_began, measurement.server.snapshot())
    sizing.used_memory_per_1000_users = round(signed_in.used_memory * 1000 / users)
    sizing.used_memory_per_1000_users_kept = round(
        (signed_in.used_memory + expired.used_memory) * 1000 / users
    )

    before = measurement.usage_by_key()
    sized = measurement.sign_in("sized", SIZED)
    signed_in_keys = measurement.usage_by_key()
    measurement.consent("sized consent", sized)
    consented = measurement.usage_by_key()
    sizing.consent_memory = [
        kind for kind in _memory_by_kind(signed_in_keys, consented) if kind.kind == "consent"
    ]
    measurement.pending("sized pending", SIZED)
    sizing.pending_memory = [
        kind
        for kind in _memory_by_kind(consented, measurement.usage_by_key())
        if kind.kind in ("flow", "rate")
    ]


def _ttl(seconds: int) -> str:
    if seconds == -1:
        return "kept"
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.0f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


def lasting(kinds: list[KindMemory]) -> int:
    """Bytes of the kinds that outlive the sign-in's own hour: what an active user keeps."""
    return sum(kind.bytes for kind in kinds if kind.ttl == -1 or kind.ttl > LASTING)


def report(sizing: Sizing, instance_rate: float) -> str:
    lines = [
        f"Redis sizing, measured on redis-server {sizing.redis_version} at {sizing.commit}; "
        f"server CPU over {sizing.users} operations of each kind in {sizing.rounds} rounds",
        f"(the median round, the lowest and highest in brackets; the idle server's own "
        f"{sizing.idle_cpu_ms_per_s:.2f} ms of CPU per second taken out).",
        "",
        f"{'operation':40} {'HTTP':>4} {'round trips':>11} {'commands':>8} {'bytes in':>9} "
        f"{'bytes out':>9}  Redis CPU µs",
    ]
    for cost in sizing.operations:
        low, high = cost.cpu_us_range
        lines.append(
            f"{cost.operation:40} {cost.http_requests:>4} {cost.round_trips:>11} "
            f"{cost.commands:>8} {cost.bytes_in:>9,} {cost.bytes_out:>9,}  "
            f"{cost.cpu_us:.0f} ({low:.0f}-{high:.0f})"
        )
    for title, kinds in (
        ("A user's first sign-in with a refresh token, per user", sizing.user_memory),
        ("A consent to a third-party client", sizing.consent_memory),
        ("A sign-in waiting for its code (rate counters shared per window)", sizing.pending_memory),
    ):
        lines += ["", f"{title} (MEMORY USAGE):", f"{'kind':22} {'new keys':>8} {'bytes':>7}  TTL"]
        lines += [f"{k.kind:22} {k.keys:>8.2f} {k.bytes:>7,}  {_ttl(k.ttl)}" for k in kinds]
        lines.append(f"{'total':22} {'':>8} {sum(k.bytes for k in kinds):>7,}")
        lines.append(f"{'kept beyond 2 h':22} {'':>8} {lasting(kinds):>7,}")
    lines += [
        "",
        f"used_memory per 1,000 users after their first sign-in: "
        f"{sizing.used_memory_per_1000_users:,} bytes; "
        f"{sizing.used_memory_per_1000_users_kept:,} kept beyond 2 h",
        f"used_memory per 1,000 pending sign-ins: {sizing.used_memory_per_1000_pending:,} bytes",
        "",
        f"One Redis core at {SAFE_UTILISATION:.0%} carries per second (at the highest round's "
        f"CPU in brackets); full sign-ins also in provider instances at {instance_rate:g}/s:",
    ]
    for cost in sizing.operations:
        low, high = cost.cpu_us_range
        if low <= 0:
            continue
        rate, slowest = (SAFE_UTILISATION * 1_000_000 / cpu for cpu in (cost.cpu_us, high))
        megabits = rate * (cost.bytes_in + cost.bytes_out) * 8 / 1e6
        line = f"  {cost.operation:40} {rate:>6,.0f} ({slowest:>5,.0f})  {megabits:>4,.0f} Mbit/s"
        if cost.operation in FULL_SIGN_INS:
            line += f"  {rate / instance_rate:.1f} ({slowest / instance_rate:.1f}) instances"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="operations of each kind")
    parser.add_argument("--rounds", type=int, default=4, help="batches of each kind")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--instance-rate",
        type=float,
        default=INSTANCE_SIGN_INS_PER_S,
        help="sign-ins/s one provider instance carries (docs/performance.md)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= args.users <= 4000:
        parser.error("--users must be between --rounds and 4000")
    with tempfile.TemporaryDirectory() as workdir:
        server = RedisServer(Path(workdir), "sizing")
        try:
            sizing = measure_sizing(server.url, args.users, args.rounds)
        finally:
            server.stop()
    print(report(sizing, args.instance_rate))
    if args.json:
        args.json.write_text(json.dumps(asdict(sizing), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
