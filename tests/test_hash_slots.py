"""Redis Cluster runs a script, a MULTI/EXEC block or a multi-key command only when all its
keys hash to one slot (else CROSSSLOT). The real app's flows run here against a real
redis-server while MONITOR records every command the store sends; each such operation's
keys must share a slot, and a script may touch only the keys it was passed in KEYS. A
static check makes sure every Lua script of the store's modules (found by scanning store/)
was among those run, so a new script is checked too; the flows' outbox entries are relayed
and delivered (once retried) so the outbox's scripts run as well (store/keyspace.py keeps
the inventory and the tags).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis
from flask import Flask
from redis.crc import key_slot

from oidc_link import create_app
from oidc_link import store as store_package
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.metrics import Metrics
from oidc_link.outbox.handling import Outcome
from oidc_link.outbox.runner import OutboxRunner
from oidc_link.services import build_services
from oidc_link.store import Store, accounts, base, keyspace, outbox, told
from oidc_link.store.keyspace import kind_of
from oidc_link.web.context import EXTENSION_NAME
from tests.conftest import ON_REDIS_CLUSTER
from tests.layouts import record_layout as flows

# Commands whose every argument is a key; every other keyed command names its key first.
ALL_KEYS = {"MGET", "DEL", "UNLINK", "EXISTS", "TOUCH"}
KEYLESS = {
    "MULTI", "EXEC", "DISCARD", "PING", "TIME", "INFO", "SCRIPT", "CLIENT", "HELLO",
    "SELECT", "ECHO", "FLUSHDB", "MONITOR", "COMMAND", "READONLY",
}  # fmt: skip
STOP = "hash-slot-recording-done"


@dataclass
class Operation:
    """One unit Redis Cluster must run on one slot: a script with what it ran, a MULTI
    block, or a lone multi-key command."""

    what: str
    keys: list[str] = field(default_factory=list)
    # For a script: the keys it was passed (``keys`` adds those its commands touched).
    declared: list[str] = field(default_factory=list)

    def slots(self) -> set[int]:
        return {key_slot(key.encode()) for key in self.keys}


def keys_of(args: list[str]) -> list[str]:
    name = args[0].upper()
    if name in KEYLESS or len(args) < 2:
        return []
    if name in ALL_KEYS:
        return args[1:]
    if name in ("EVALSHA", "EVAL"):
        return args[3 : 3 + int(args[2])]
    return [args[1]]


def operations(commands: list[dict[str, Any]]) -> list[Operation]:
    """Group MONITOR's lines (each connection's in order) into operations of more than one
    key: MULTI..EXEC blocks, scripts (EVALSHA and the commands its Lua ran), MGETs."""
    found: list[Operation] = []
    blocks: dict[str, Operation] = {}
    # MONITOR shows the commands a script ran right after the EVALSHA that ran it.
    script: Operation | None = None
    for line in commands:
        args = line["args"]
        name = args[0].upper()
        if line["client_type"] == "lua":
            assert script is not None, args
            script.keys += keys_of(args)
            continue
        script = None
        connection = line["client"]
        if name == "MULTI":
            blocks[connection] = Operation("MULTI")
            continue
        if name in ("EXEC", "DISCARD"):
            found.append(blocks.pop(connection))
            continue
        keys = keys_of(args)
        if connection in blocks:
            blocks[connection].keys += keys
            blocks[connection].what += " " + name
        if name in ("EVALSHA", "EVAL"):
            script = Operation(name + " " + args[1][:12], list(keys), list(keys))
            found.append(script)
        elif len(keys) > 1 and connection not in blocks:
            found.append(Operation(name, keys))
    return found


# One MONITOR line: time, [db client], then each argument quoted as Redis escapes it.
MONITOR_LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]*)\] (.*)$")
ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"')


def unescaped(argument: str) -> str:
    """An argument as Redis's MONITOR quoted it (sdscatrepr), as sent; keys are ASCII."""
    return re.sub(r"\\(x[0-9a-f]{2}|.)", lambda m: _escape(m.group(1)), argument)


def _escape(code: str) -> str:
    if code.startswith("x"):
        return chr(int(code[1:], 16))
    return {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}.get(code, code)


@pytest.fixture
def monitored(redis_server_url: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every command the real redis-server runs from now until the test calls it."""
    server = redis.Redis.from_url(redis_server_url, decode_responses=True)
    server.flushdb()
    seen: list[dict[str, Any]] = []
    connection = server.connection_pool.get_connection()
    connection.send_command("MONITOR")
    assert connection.read_response() == "OK"

    def listen() -> None:
        while True:
            line = connection.read_response()
            match = MONITOR_LINE.match(line)
            assert match is not None, line
            client, quoted = match.groups()
            args = [unescaped(arg) for arg in ARGUMENT.findall(quoted)]
            if STOP in args:
                return
            seen.append(
                {"args": args, "client": client, "client_type": "lua" if client == "lua" else ""}
            )

    def finish() -> list[dict[str, Any]]:
        server.echo(STOP)
        thread.join(10)
        assert not thread.is_alive(), "MONITOR did not see the end of the recording"
        return seen

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield finish
    connection.disconnect()
    server.flushdb()


@pytest.fixture
def app(redis_server_url: str, console: list[str]) -> Flask:
    settings = settings_from_mapping(flows.CONFIG, {}, "hash slots")
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    client.flushdb()  # another test's signing keys are sealed with another key
    services = build_services(
        settings, clock=FixedClock(flows.RECORDED_AT), redis_client=client,
        announce=console.append,
    )  # fmt: skip
    return create_app(settings, services)


def run_every_flow(app: Flask, console: list[str]) -> None:
    """Sign-in by SMS with a refresh token, SSO with a third-party consent, a pushed
    request through SSO, refresh, userinfo, revocation, logout, the /v1 API (account with an
    Idempotency-Key, Account Link)."""
    browser = flows.Browser(app)
    shop = flows.sign_in(app, browser, console)
    flows.consent(app, browser)
    client = app.test_client()
    query = parse_qs(
        urlsplit(flows.authorize_url("shop", flows.SHOP_CALLBACK, "openid", "par")).query
    )
    pushed = client.post(
        "/par",
        data={name: values[0] for name, values in query.items()},
        auth=("shop", flows.SHOP_SECRET),
        base_url=flows.ISSUER,
    )
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    via_sso = browser.get(
        "/authorize?"
        + urlencode({"client_id": "shop", "request_uri": pushed.get_json()["request_uri"]})
    )
    flows.exchange(
        app, flows.code_of(via_sso, flows.SHOP_CALLBACK), ("shop", flows.SHOP_SECRET),
        flows.SHOP_CALLBACK,
    )  # fmt: skip
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": shop["refresh_token"]},
        auth=("shop", flows.SHOP_SECRET),
        base_url=flows.ISSUER,
    )
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    tokens = refreshed.get_json()
    userinfo = client.get(
        "/userinfo",
        headers={"Authorization": "Bearer " + tokens["access_token"]},
        base_url=flows.ISSUER,
    )
    assert userinfo.status_code == 200, userinfo.get_data(as_text=True)
    revoked = client.post(
        "/revoke",
        data={"token": tokens["refresh_token"]},
        auth=("shop", flows.SHOP_SECRET),
        base_url=flows.ISSUER,
    )
    assert revoked.status_code == 200
    signed_out = browser.get("/logout?" + urlencode({"id_token_hint": shop["id_token"]}))
    # Signed out at once (the hint is this session's; no post_logout_redirect_uri: a page).
    assert "You have been signed out" in signed_out.get_data(as_text=True)
    flows.platform_calls(app)
    run_the_outbox(app)


def run_the_outbox(app: Flask) -> None:
    """What the flows wrote to the outbox, relayed and delivered with the outbox's own
    relay and worker: each entry refused once (a retry, brought back when due), then
    acknowledged; so every script of the delivery stream runs too."""
    services = app.extensions[EXTENSION_NAME].services
    store: Store = services.store
    clock: FixedClock = services.clock
    refused: set[str] = set()

    def once_refused(entry: outbox.OutboxEntry, attempt: int) -> Outcome:
        if entry.entry_id in refused:
            return Outcome.DELIVERED
        refused.add(entry.entry_id)
        return Outcome.RETRY

    kinds = {"event", "backchannel_logout", "webhook_delivery", "backchannel_logout_notice"}
    runner = OutboxRunner(
        store, clock, services.settings.outbox, Metrics.standalone(),
        dict.fromkeys(kinds, once_refused), {},
    )  # fmt: skip
    store.deliveries.create_group()
    [worker] = runner.workers[:1]
    assert runner.relay_pass() > 0, "the flows wrote nothing to the outbox"
    while worker.run_once():
        pass
    clock.advance(services.settings.outbox.backoff_cap + 1)
    runner.relay_pass()
    while worker.run_once():
        pass
    assert refused and runner.measure() == 0


def script_modules() -> list[Any]:
    """Every module of the store that registers a Lua script, found by its text."""
    modules = []
    for info in pkgutil.iter_modules(store_package.__path__):
        module = importlib.import_module(f"{store_package.__name__}.{info.name}")
        if "register_script" in inspect.getsource(module):
            modules.append(module)
    return modules


def every_script() -> dict[str, str]:
    """Each Lua script the store's modules register, by its SHA-1 (what EVALSHA names):
    those of the modules that register scripts, and those they import from another."""
    found = {}
    for module in script_modules():
        for name, value in inspect.getmembers(module):
            # TELL is a fragment the scripts that write an outbox entry begin with, never
            # run alone: checked by its text below.
            if name.isupper() and isinstance(value, str) and "redis.call" in value:
                if value == told.TELL:
                    continue
                found[hashlib.sha1(value.encode()).hexdigest()] = name  # noqa: S324
    return found


def test_every_script_transaction_and_multi_key_command_of_the_flows_stays_in_one_slot(
    app: Flask, console: list[str], monitored: Callable[[], list[dict[str, Any]]]
) -> None:
    run_every_flow(app, console)
    ops = operations(monitored())
    ran = {op.what.split()[1] for op in ops if op.what.startswith("EVAL")}

    assert ops, "MONITOR recorded nothing"
    # Named by the kinds of their keys, so that a failure says which aggregates meet.
    crossing = [(op.what, [kind_of(key) for key in op.keys]) for op in ops if len(op.slots()) > 1]
    assert crossing == []
    undeclared = [
        (op.what, sorted(set(op.keys) - set(op.declared)))
        for op in ops
        if op.what.startswith("EVAL") and not set(op.keys) <= set(op.declared)
    ]
    assert undeclared == []
    not_run = {name for sha, name in every_script().items() if sha[:12] not in ran}
    assert not_run <= set(ONE_KEY_SCRIPTS), not_run


@ON_REDIS_CLUSTER
def test_the_same_flows_and_their_outbox_run_on_a_real_redis_cluster(
    redis_client: redis.Redis, console: list[str]
) -> None:
    """Where MONITOR cannot watch (a cluster's nodes each have their own), the cluster
    itself judges: a CROSSSLOT or a key the client cannot route fails the flows."""
    settings = settings_from_mapping(flows.CONFIG, {}, "hash slots")
    services = build_services(
        settings, clock=FixedClock(flows.RECORDED_AT), redis_client=redis_client,
        announce=console.append,
    )  # fmt: skip
    run_every_flow(create_app(settings, services), console)


# Scripts the flows above do not run (a refused event's refund, an account update's compare
# and set, an account's delete; the sandbox's code check, which a code step runs only when
# the check read ahead in the lock's round trip cannot decide: interaction/read_ahead.py),
# each on one key, and perhaps that key's outbox stream:
# checked by their text, which names KEYS[1] and no other but through the TELL fragment
# (its KEYS[2]: keyspace.outbox names the stream in its key's slot).
ONE_KEY_SCRIPTS = {
    "REFUND_COUNT": base.REFUND_COUNT,
    "SWAP_RECORD": accounts.SWAP_RECORD,
    "DELETE_AND_TELL": told.DELETE_AND_TELL,
    "CHECK_SANDBOX_CODE": base.CHECK_SANDBOX_CODE,
}


def test_the_outbox_fragment_the_changes_scripts_begin_with_touches_only_their_stream() -> None:
    # The scripts that begin with it run above (or are among ONE_KEY_SCRIPTS), each passed
    # its key's own stream as KEYS[2]; the fragment itself names no other key.
    assert set(re.findall(r"KEYS\[(\w+)\]", told.TELL)) == {"2"}
    assert "ipairs(KEYS)" not in told.TELL and ".." not in told.TELL
    assert all(
        script.startswith(told.TELL) for script in ONE_KEY_SCRIPTS.values() if "tell(" in script
    )


def test_the_scripts_the_flows_do_not_run_touch_only_their_one_key() -> None:
    for text in ONE_KEY_SCRIPTS.values():
        own = text.removeprefix(told.TELL)
        assert set(re.findall(r"KEYS\[(\w+)\]", own)) == {"1"}
        assert "ipairs(KEYS)" not in own
        # Each command's key is KEYS[1] itself, never a name the script builds (a value it
        # writes may be joined with `..`: the sandbox's "<code's number> <wrong attempts>").
        keys = re.findall(r"redis\.call\('\w+',\s*([^,)]+)", own)
        assert keys and set(keys) == {"KEYS[1]"}, keys
    account = keyspace.account("acct_1")
    assert key_slot(keyspace.outbox(account).encode()) == key_slot(account.encode())


def test_the_code_step_ends_the_sign_in_before_it_stores_the_code_and_session(
    app: Flask, console: list[str], monitored: Callable[[], list[dict[str, Any]]]
) -> None:
    # Its writes are one plain pipeline, not a MULTI: the single-use guard (the flow's end)
    # goes first, so a pipeline cut short never leaves a code while the flow can run again.
    flows.sign_in(app, flows.Browser(app), console)
    commands = [line["args"] for line in monitored() if line["client_type"] != "lua"]
    finish = hashlib.sha1(base.FINISH_FLOW.encode()).hexdigest()  # noqa: S324 - EVALSHA's

    def first(kind: str) -> int:
        return next(
            at
            for at, args in enumerate(commands)
            if args[0].upper() == "SET" and kind_of(args[1]) == kind
        )

    ended = next(
        at for at, args in enumerate(commands) if args[0].upper() == "EVALSHA" and args[1] == finish
    )
    assert ended < first("code")
    assert ended < first("session")
