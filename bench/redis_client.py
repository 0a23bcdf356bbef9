"""``python -m bench.redis_client``: what redis-py itself costs oidc-link, client by client.

Two measures on a redis-server of its own, each variant taking turns with the others:
1. the client's CPU per command for a few command shapes oidc-link sends (a GET, a hash
   read, a MULTI of three writes, a script by EVALSHA and by redis-py's Script object);
2. the app's CPU per sign-in step (bench.in_process's exchanges) over each client.

The variants: redis-py's pure-Python reply parser and command packer against hiredis's
(RESP2 and RESP3), redis-py's ConnectionPool against oidc-link's PinnedConnectionPool (a
connection per thread), and the client oidc-link's connect() builds (also its
CommandPacker). docs/performance.md, "Issue 16 levers: the Redis client", keeps the figures.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer
from redis.utils import HIREDIS_AVAILABLE

from bench import step_budget
from bench.in_process import ISSUER, step_rounds
from bench.processes import RedisServer, oidc_link_config
from oidc_link import create_app
from oidc_link.config import load_settings
from oidc_link.logs import configure_logging
from oidc_link.services import build_services
from oidc_link.store.connection import connect
from oidc_link.store.pinned_pool import PinnedConnectionPool

SCRIPT = "return redis.call('GET', KEYS[1])"


def python_packer() -> PythonRespSerializer:
    """redis-py's own command packer, which it uses when hiredis is not installed."""
    return PythonRespSerializer(6000, Encoder("utf-8", "strict", True).encode)


def variants(hiredis: bool) -> dict[str, Callable[[int], redis.Redis]]:
    """Client factories by name, each for a redis-server port."""

    def client(pool: type[redis.ConnectionPool], **kwargs: Any) -> Callable[[int], redis.Redis]:
        def build(port: int) -> redis.Redis:
            return redis.Redis.from_pool(
                pool(host="127.0.0.1", port=port, decode_responses=True, **kwargs)
            )

        return build

    python = {"parser_class": _RESP3Parser, "command_packer": python_packer()}
    found = {
        "Python parser, RESP3, pool": client(redis.ConnectionPool, protocol=3, **python),
        "Python parser, RESP2, pool": client(
            redis.ConnectionPool, protocol=2, **(python | {"parser_class": _RESP2Parser})
        ),
    }
    if hiredis:
        found |= {
            "hiredis, RESP2, pool": client(
                redis.ConnectionPool, protocol=2, parser_class=_HiredisParser
            ),
            "hiredis, RESP3, pool": client(
                redis.ConnectionPool, protocol=3, parser_class=_HiredisParser
            ),
            "hiredis, RESP3, pinned": client(
                PinnedConnectionPool, protocol=3, parser_class=_HiredisParser
            ),
        }
    found["Python parser, RESP3, pinned"] = client(PinnedConnectionPool, protocol=3, **python)
    if hiredis:
        # What oidc-link runs: connect()'s client (hiredis, pinned, its CommandPacker).
        found["connect(): + CommandPacker"] = lambda port: connect(f"redis://127.0.0.1:{port}/0")
    return found


def command_shapes(client: redis.Redis) -> dict[str, Callable[[], object]]:
    client.set("bench:string", "v" * 200)
    client.hset("bench:hash", mapping={f"field{i}": "v" * 30 for i in range(6)})
    sha = client.script_load(SCRIPT)
    script = client.register_script(SCRIPT)

    def multi() -> None:
        pipeline = client.pipeline(transaction=True)
        pipeline.set("bench:a", "1", ex=60)
        pipeline.hset("bench:b", mapping={"x": "1", "y": "2"})
        pipeline.expire("bench:b", 60)
        pipeline.execute()

    return {
        "GET": lambda: client.get("bench:string"),
        "HGETALL": lambda: client.hgetall("bench:hash"),
        "MULTI x3": multi,
        "EVALSHA": lambda: client.evalsha(sha, 1, "bench:string"),
        "Script()": lambda: script(keys=["bench:string"]),
    }


def per_command(port: int, hiredis: bool, count: int, rounds: int) -> str:
    """Client CPU in microseconds per command, the median of ``rounds`` interleaved rounds."""
    shapes = {name: command_shapes(build(port)) for name, build in variants(hiredis).items()}
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in shapes}
    for _ in range(rounds):
        for name, operations in shapes.items():
            for shape, operation in operations.items():
                for _ in range(count // 10):
                    operation()
                started = time.process_time()
                for _ in range(count):
                    operation()
                spent = (time.process_time() - started) * 1e6 / count
                figures[name].setdefault(shape, []).append(spent)
    names = list(next(iter(shapes.values())))
    lines = [
        "| client | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, by_shape in figures.items():
        cells = " | ".join(f"{statistics.median(by_shape[shape]):.1f}" for shape in names)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def per_step(redis_url: str, port: int, hiredis: bool, count: int, rounds: int) -> str:
    """The app's CPU per exchange over each client (bench.in_process's step table), sign-ins
    of each variant taking turns."""
    with tempfile.TemporaryDirectory(prefix="oidc-link-redis-client-") as temporary:
        workdir = Path(temporary)
        config = workdir / "oidc-link.toml"
        config.write_text(oidc_link_config(ISSUER, redis_url))
        log_file = open(workdir / "oidc-link.log", "w")  # noqa: SIM115 - until exit
        configure_logging("json", "INFO", stream=log_file)
        chosen = variants(hiredis)
        if hiredis:
            chosen = {
                name: build
                for name, build in chosen.items()
                if name.endswith("RESP3, pool") or name.startswith(("hiredis, RESP3, pin", "conn"))
            }
        apps = {}
        for name, build in chosen.items():
            settings = load_settings(str(config))
            apps[name] = create_app(settings, build_services(settings, redis_client=build(port)))
        sys.stderr = open(workdir / "stderr.txt", "w")  # noqa: SIM115 - sandbox console
        try:
            figures = step_rounds(apps, count, rounds)
        finally:
            sys.stderr.close()
            sys.stderr = sys.__stderr__
            logging.disable(logging.NOTSET)
            log_file.close()
    baseline = next(iter(figures))
    steps = [step.name for step in step_budget.STEPS]
    lines = [
        "| client | " + " | ".join(steps) + " | sign-in | vs first |",
        "|---|" + "---|" * (len(steps) + 2),
    ]
    for name, results in figures.items():
        cells = " | ".join(f"{statistics.median(r[step] for r in results):.3f}" for step in steps)
        totals = [sum(r[s.name] for s in step_budget.SIGN_IN) for r in results]
        ratio = statistics.median(
            total / sum(r[s.name] for s in step_budget.SIGN_IN)
            for total, r in zip(totals, figures[baseline], strict=True)
        )
        lines.append(f"| {name} | {cells} | {statistics.median(totals):.3f} | {ratio:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_client", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="commands per shape and round")
    parser.add_argument("--sign-ins", type=int, default=200, help="sign-ins per variant, round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commands-only", action="store_true", help="skip the sign-in steps")
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 50))
    with tempfile.TemporaryDirectory(prefix="oidc-link-redis-client-") as temporary:
        server = RedisServer(Path(temporary), "redis-client")
        try:
            print(f"hiredis installed: {HIREDIS_AVAILABLE}\n")
            print("Client CPU per command, microseconds (median of rounds):\n")
            print(per_command(server.port, HIREDIS_AVAILABLE, max(100, args.count), rounds))
            if not args.commands_only:
                print("\nApp CPU per exchange, ms (median of rounds; log and metrics on):\n")
                print(per_step(server.url, server.port, HIREDIS_AVAILABLE,
                               max(10, args.sign_ins), rounds))  # fmt: skip
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
