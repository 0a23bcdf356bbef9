"""store/plain_socket.py sends and reads as redis-py's ``send_packed_command`` and
``read_response`` do, and fails as they fail: the same answers, the same exceptions (class,
text and cause) and the connection kept or dropped alike, for every kind of reply (split
across many reads or not), a read or a write that fails in each way a socket fails, and on
a real redis-server the same answers for many commands and reply types, errors included,
by the production client with the shortcut and without it (single commands and plain
pipelines). Which connections take it: plain TCP and Unix sockets only."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from redis.sentinel import SentinelManagedConnection

from oidc_link.store.connection import connect
from oidc_link.store.plain_socket import plain, read, send
from tests.test_direct_reply import REPLIES

FIRST = b"+FIRST\r\n"


def connection_fed(data: bytes, read_size: int = 65536) -> tuple[redis.Connection, socket.socket]:
    """A redis-py connection (hiredis, RESP3, decoding UTF-8) whose socket holds ``data``;
    a small ``read_size`` makes a reply take many reads."""
    ours, theirs = socket.socketpair()
    ours.settimeout(0.2)
    connection = redis.Connection(
        protocol=3, decode_responses=True, socket_timeout=0.2, socket_read_size=read_size
    )
    connection._sock = ours
    connection._parser.on_connect(connection)
    theirs.sendall(data)
    return connection, theirs


def outcome(action: Any, connection: redis.Connection) -> tuple[str, str, bool]:
    """What ``action`` gave (a value, or an error's class and text), its error's cause, and
    whether the connection was kept."""
    cause = ""
    try:
        answer = repr(action(connection))
    except BaseException as error:  # the error is what is compared
        answer = f"{type(error).__name__}: {error}"
        cause = repr(error.__cause__)
    return answer, cause, connection._sock is not None


def both_read(data: bytes, *, after_first: bool, read_size: int = 65536) -> list[Any]:
    results = []
    for action in (lambda c: c.read_response(), read):
        connection, peer = connection_fed(FIRST + data if after_first else data, read_size)
        try:
            assert plain(connection)
            if after_first:
                assert connection.read_response() == "FIRST"
            results.append(outcome(action, connection))
        finally:
            connection.disconnect()
            peer.close()
    return results


@pytest.mark.parametrize("read_size", [65536, 3])
@pytest.mark.parametrize("after_first", [True, False])
@pytest.mark.parametrize("data", [*REPLIES, b"$70000\r\n" + b"x" * 70000 + b"\r\n"])
def test_every_kind_of_reply_is_read_as_redis_py_reads_it(
    data: bytes, after_first: bool, read_size: int
) -> None:
    expected, ours = both_read(data, after_first=after_first, read_size=read_size)
    assert ours == expected


def test_no_reply_times_out_and_an_ended_connection_fails_as_under_redis_py() -> None:
    expected, ours = both_read(b"", after_first=False)
    assert ours == expected and expected[0].startswith("TimeoutError") and not expected[2]
    results = []
    for action in (lambda c: c.read_response(), read):
        connection, peer = connection_fed(b"+PART")
        peer.close()  # the server's end of file, half a reply read
        results.append(outcome(action, connection))
        connection.disconnect()
    assert results[1] == results[0]
    assert results[0][0].startswith("ConnectionError") and not results[0][2]


class FailingSocket:
    """A socket whose reads or writes fail with ``error`` (an instance made afresh for each
    connection, so both meet an equal one)."""

    def __init__(self, sock: socket.socket, make_error: Any) -> None:
        self.sock = sock
        self.make_error = make_error

    def recv_into(self, *args: Any) -> int:
        raise self.make_error()

    def sendall(self, *args: Any) -> None:
        raise self.make_error()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


ERRORS = [
    lambda: TimeoutError("timed out"),
    lambda: TimeoutError(errno.ETIMEDOUT, "Connection timed out"),
    lambda: ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    lambda: BrokenPipeError(errno.EPIPE, "Broken pipe"),
    lambda: OSError("one argument"),
    lambda: BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"),
    lambda: ValueError("bad"),
    lambda: KeyboardInterrupt(),
]


@pytest.mark.parametrize("make_error", ERRORS)
def test_a_read_that_fails_fails_as_under_redis_py(make_error: Any) -> None:
    results = []
    for action in (lambda c: c.read_response(), read):
        connection, peer = connection_fed(b"")
        failing = FailingSocket(connection._sock, make_error)
        connection._sock = connection._parser._sock = failing  # type: ignore[assignment]
        results.append(outcome(action, connection))
        connection.disconnect()
        failing.sock.close()
        peer.close()
    assert results[1] == results[0]
    assert not results[0][2]


@pytest.mark.parametrize("make_error", ERRORS)
def test_a_write_that_fails_fails_as_under_redis_py(make_error: Any) -> None:
    results = []
    packed = [b"*1\r\n$4\r\nPING\r\n"]
    for action in (lambda c: c.send_packed_command(packed), lambda c: send(c, packed)):
        connection, peer = connection_fed(b"")
        failing = FailingSocket(connection._sock, make_error)
        connection._sock = connection._parser._sock = failing  # type: ignore[assignment]
        results.append(outcome(action, connection))
        connection.disconnect()
        failing.sock.close()
        peer.close()
    assert results[1] == results[0]
    assert not results[0][2]


def test_which_connections_take_the_shortcut(tmp_path: Any) -> None:
    def opened(connection: Any) -> Any:
        connection._sock, _ = socket.socketpair()
        connection._parser.on_connect(connection)
        return connection

    assert plain(opened(redis.Connection(protocol=3)))
    assert plain(opened(redis.UnixDomainSocketConnection(path=str(tmp_path / "s"))))
    assert not plain(redis.Connection())  # not connected: redis-py connects
    assert not plain(opened(redis.Connection(health_check_interval=5)))
    assert not plain(opened(redis.SSLConnection()))
    assert not plain(opened(SentinelManagedConnection(connection_pool=None)))

    class Counting(redis.Connection):
        pass

    assert not plain(opened(Counting()))
    fake = fakeredis.FakeRedis()
    fake.ping()
    connection = fake.connection_pool.get_connection()
    assert not plain(connection)


class RedisPyConnection(redis.Connection):
    """redis-py's connection as it is, under another name: not plain, so the client keeps
    redis-py's send and read (and read_reply), as before the shortcut."""


@pytest.fixture
def clients(redis_server_url: str) -> Iterator[Any]:
    """Two production clients on one server, each on a database of its own, the second
    without the shortcut."""
    base = redis_server_url.rsplit("/", 1)[0]
    fast, slow = connect(f"{base}/1"), connect(f"{base}/2")
    slow.connection_pool.connection_class = RedisPyConnection
    for client in (fast, slow):
        client.flushdb()
    yield fast, slow
    for client in (fast, slow):
        client.flushdb()
    fast.close()
    slow.close()


COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "s", "value"),
    ("GET", "s"),
    ("GET", "missing"),
    ("SET", "u", "zëo ✓"),
    ("GET", "u"),
    ("SET", "big", "x" * 200_000),
    ("STRLEN", "big"),
    ("GET", "big"),
    ("SET", "n", 5, "EX", 60),
    ("INCR", "n"),
    ("INCRBYFLOAT", "n", 1.5),
    ("TTL", "n"),
    ("SET", "nx", "1", "NX"),
    ("SET", "nx", "2", "NX"),
    ("GETDEL", "nx"),
    ("HSET", "h", "a", 1, "b", "two"),
    ("HGETALL", "h"),
    ("HMGET", "h", "a", "zz"),
    ("SADD", "set", "x", "y"),
    ("SMEMBERS", "set"),
    ("ZADD", "z", 1.5, "a", 2, "b"),
    ("ZRANGE", "z", 0, -1, "WITHSCORES"),
    ("RPUSH", "l", "a", "b", "c"),
    ("LRANGE", "l", 0, -1),
    ("EXPIRE", "l", 60, "NX"),
    ("EXISTS", "s", "h", "none"),
    ("EVAL", "return {1, 'two', {3}, false, true}", 0),
    ("EVAL", "return redis.error_reply('MINE failed')", 0),
    ("EVAL", "return redis.call('GET', KEYS[1])", 1, "s"),
    ("EVAL", "return 1.5", 0),
    ("EVALSHA", "0" * 40, 0),
    ("GET", "h"),
    ("INCR", "s"),
    ("NOSUCHCOMMAND",),
    ("GET",),
    ("CLIENT", "GETNAME"),
    ("SCRIPT", "EXISTS", "0" * 40),
    ("OBJECT", "ENCODING", "s"),
    ("DBSIZE",),
    ("DEL", "s", "u", "h"),
    ("PING",),
    ("ECHO", ""),
    ("ECHO", "\r\n"),
]


def shown(answer: Any) -> str:
    """An answer, or an error's class and text (an error's repr leaves its text out)."""
    if isinstance(answer, Exception):
        return f"{type(answer).__name__}: {answer}"
    return repr(answer)


def run(client: Any, command: tuple[Any, ...]) -> str:
    try:
        return repr(client.execute_command(*command))
    except Exception as error:  # the error is what is compared
        return f"{type(error).__name__}: {error}"


def test_commands_answer_as_redis_py_answers_them_on_a_real_server(clients: Any) -> None:
    fast, slow = clients
    for command in COMMANDS:
        ours = run(fast, command)
        theirs = run(slow, command)
        assert ours == theirs, command
        assert fast.connection_pool._pins.pin.connection._sock is not None
    # Each took its path: the shortcut on one connection only.
    assert plain(fast.connection_pool._pins.pin.connection)
    assert not plain(slow.connection_pool._pins.pin.connection)


def test_a_value_that_is_not_utf_8_fails_and_drops_the_connection_as_under_redis_py(
    clients: Any, redis_server_url: str
) -> None:
    fast, slow = clients
    base = redis_server_url.rsplit("/", 1)[0]
    for db in (1, 2):
        with redis.Redis.from_url(f"{base}/{db}") as raw:
            raw.set("bytes", b"\xff\xfe")
    outcomes = [run(client, ("GET", "bytes")) for client in (fast, slow)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0].startswith("UnicodeDecodeError")
    assert fast.get("missing") is None  # a new connection serves the next command


def test_plain_pipelines_answer_as_redis_py_answers_them_on_a_real_server(clients: Any) -> None:
    answers = []
    for client in clients:
        pipeline = client.pipeline(transaction=False)
        for command in COMMANDS:
            if command not in {("NOSUCHCOMMAND",), ("GET",)}:  # redis-py refuses GET alone
                pipeline.execute_command(*command)
        answers.append([shown(answer) for answer in pipeline.execute(raise_on_error=False)])
        pipeline = client.pipeline(transaction=False)
        pipeline.set("p", "1").incr("p").get("p").hset("p", "a", 1).get("p")
        try:
            pipeline.execute()
        except redis.ResponseError as error:
            answers.append([f"{type(error).__name__}: {error}"])
    assert len(answers) == 4 and answers[:2] == answers[2:]
    assert any(answer.startswith("ResponseError: ") for answer in answers[0])


def test_one_write_carries_the_pipeline_as_redis_py_packs_it() -> None:
    connection = connect("redis://127.0.0.1:1/0").connection_pool.make_connection()
    commands = [
        ("SET", "k", "v"),
        ("CLIENT ID",),
        ("SET", "m", memoryview(b"abc")),
        ("SET", "b", bytearray(b"xyz")),
        ("SET", "f", 1.5),
        ("SET", "big", "x" * 10_000),
        ("HSET", "h", "ë", 7),
    ]
    pack = connection._command_packer.pack
    ours = b"".join([piece for args in commands for piece in pack(*args)])
    assert ours == b"".join(bytes(piece) for piece in connection.pack_commands(commands))
