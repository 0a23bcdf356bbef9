"""store/direct_client.py's ``read_reply`` answers what redis-py's ``read_response`` answers,
and leaves the connection as it leaves it (kept, or dropped), for every kind of reply:
values of each RESP3 type, error replies, a LOADING reply (a ConnectionError), an error
inside an array, a broken reply, bytes that are not UTF-8, a push notice before the answer,
a reply not yet read, and no reply at all (a timeout). Each case runs on two connections fed
the same bytes over a socket pair, one read by each."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis

from oidc_link.store.direct_client import read_reply

FIRST = b"+FIRST\r\n"
REPLIES = [
    b"+OK\r\n",
    b"$3\r\nabc\r\n",
    b"$-1\r\n",
    b"_\r\n",
    b":5\r\n",
    b",1.5\r\n",
    b"#t\r\n",
    b"*2\r\n$1\r\na\r\n:1\r\n",
    b"*0\r\n",
    b"%1\r\n+a\r\n:1\r\n",
    b"~1\r\n+a\r\n",
    b"$4\r\nz\xc3\xabo\r\n",
    b"-ERR wrong number of arguments\r\n",
    b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
    b"-READONLY You can't write against a read only replica.\r\n",
    b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    b"-MISCONF Redis is configured to save RDB snapshots\r\n",
    b"-LOADING Redis is loading the dataset in memory\r\n",
    b"*2\r\n-LOADING Redis is loading\r\n:1\r\n",
    b"*2\r\n:1\r\n-ERR inside\r\n",
    b"!oops\r\n",
    b"$2\r\n\xff\xfe\r\n",
    b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n+AFTER PUSH\r\n",
]


def connection_fed(data: bytes) -> tuple[redis.Connection, socket.socket]:
    """A redis-py connection (hiredis, RESP3, decoding UTF-8) whose socket holds ``data``."""
    ours, theirs = socket.socketpair()
    ours.settimeout(0.2)
    connection = redis.Connection(protocol=3, decode_responses=True, socket_timeout=0.2)
    connection._sock = ours
    connection._parser.on_connect(connection)
    theirs.sendall(data)
    return connection, theirs


def outcome(read: Any, connection: redis.Connection) -> tuple[str, bool]:
    """What reading gave (a value, or an error's class and text) and whether the connection
    was kept."""
    try:
        answer = repr(read(connection))
    except Exception as error:  # the error is what is compared
        answer = f"{type(error).__name__}: {error}"
    return answer, connection._sock is not None


def both(data: bytes, *, after_first: bool) -> tuple[tuple[str, bool], tuple[str, bool]]:
    results = []
    for read in (lambda c: c.read_response(), read_reply):
        connection, peer = connection_fed(FIRST + data if after_first else data)
        try:
            if after_first:
                assert connection.read_response() == "FIRST"  # the rest is now buffered
            results.append(outcome(read, connection))
        finally:
            connection.disconnect()
            peer.close()
    return results[0], results[1]


@pytest.mark.parametrize("data", REPLIES)
def test_a_buffered_reply_is_read_as_redis_py_reads_it(data: bytes) -> None:
    expected, ours = both(data, after_first=True)
    assert ours == expected


@pytest.mark.parametrize("data", REPLIES)
def test_a_reply_still_on_the_socket_is_read_as_redis_py_reads_it(data: bytes) -> None:
    expected, ours = both(data, after_first=False)
    assert ours == expected


def test_no_reply_times_out_and_drops_the_connection_as_redis_py_does() -> None:
    expected, ours = both(b"", after_first=False)
    assert ours == expected
    assert expected[0].startswith("TimeoutError") and expected[1] is False


def test_the_cases_cover_kept_and_dropped_connections_and_errors() -> None:
    outcomes = [both(data, after_first=True)[0] for data in REPLIES]
    assert any(kept for _, kept in outcomes) and any(not kept for _, kept in outcomes)
    assert any(text.startswith("BusyLoadingError") for text, _ in outcomes)
    assert any(text.startswith("ReadOnlyError") for text, kept in outcomes if kept)


PUSH_THEN_OK = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n+OK\r\n"


@pytest.mark.parametrize(
    "error",
    [TimeoutError("timed out"), OSError(104, "Connection reset by peer"), ValueError("bad")],
)
@pytest.mark.parametrize("after_first", [True, False])
def test_a_push_handler_that_fails_fails_as_under_redis_py(
    error: Exception, after_first: bool
) -> None:
    results = []
    for read in (lambda c: c.read_response(), read_reply):
        connection, peer = connection_fed(FIRST + PUSH_THEN_OK if after_first else PUSH_THEN_OK)

        def handler(_notice: Any) -> None:
            raise error

        connection._parser.pubsub_push_handler_func = handler
        try:
            if after_first:
                assert connection.read_response() == "FIRST"
            results.append(outcome(read, connection))
        finally:
            connection.disconnect()
            peer.close()
    assert results[1] == results[0]
    assert results[0][1] is False  # dropped


def test_the_production_client_reads_pipelines_through_read_reply_with_maintenance_handlers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client connect() builds has redis-py's maintenance handlers on its parser: the
    fast path must still be taken there (a pipeline's later replies), or it buys nothing."""
    connection, peer = connection_fed(FIRST + b"+OK\r\n")
    connection._parser.maintenance_push_handler_func = lambda _notice: None
    taken: list[Any] = []
    original = connection._parser._reader.gets

    class Reader:
        def gets(self, *args: Any) -> Any:
            answer = original(*args)
            taken.append(answer)
            return answer

    try:
        assert connection.read_response() == "FIRST"
        monkeypatch.setattr(connection._parser, "_reader", Reader())
        monkeypatch.setattr(connection, "read_response", None)  # must not be called
        assert read_reply(connection) == "OK"
        assert taken == ["OK"]
    finally:
        monkeypatch.undo()
        connection.disconnect()
        peer.close()
