"""One round trip on a plain redis-py connection (TCP or a Unix socket, hiredis, no TLS, no
Sentinel, no health checks) done with the socket and hiredis's reader directly: the packed
bytes written with ``sendall``, the reply read with ``recv_into`` and ``Reader.gets``.
Every failure is handed back to redis-py's own code (``send_packed_command``,
``read_response``), which meets it exactly as it would have met it itself, so the same
exceptions reach the store's outage translation and the connection is dropped as before.
Knows no command and no key; direct_client.py sends through it.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _HiredisParser
from redis.connection import add_debug_log_for_connection_failure

# The connection classes whose send and read are AbstractConnection's own (a subclass, such
# as TLS's, Sentinel's or a test's counting one, keeps redis-py's path).
PLAIN_CONNECTIONS = (redis.Connection, redis.UnixDomainSocketConnection)


def plain(connection: Any) -> bool:
    """Whether this module may send and read for ``connection``: a plain connection, open,
    read by redis-py's hiredis parser, with no health check due before a command
    (``health_check_interval`` 0) and not fallen back to RESP2."""
    return (
        type(connection) in PLAIN_CONNECTIONS
        and connection._sock is not None
        and not connection.health_check_interval
        and not connection._resp2_fallback
        and type(connection._parser) is _HiredisParser
    )


def send(connection: Any, packed: list[bytes]) -> None:
    """Write ``packed`` (a command's or a pipeline's bytes) to the connection's socket, as
    ``send_packed_command`` does once it knows the socket is open and healthy; a failure is
    handed to it, which logs it, drops the connection and raises what it raises."""
    sock = connection._sock
    try:
        for item in packed:
            sock.sendall(item)
    except BaseException as error:
        connection.send_packed_command(_Failing(error), check_health=False)
        raise  # not reached: send_packed_command raised


class _Failing:
    """Bytes to send whose iteration raises the error the socket raised, so that
    ``send_packed_command`` meets it where it would have met it from ``sendall``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __iter__(self) -> Any:
        raise self.error


def read(connection: Any) -> Any:
    """The next reply, as ``connection.read_response()`` gives it (an error reply raised).

    A reply hiredis holds already is taken at once; otherwise the socket is read into the
    parser's buffer until one is whole. Anything but a plain reply goes to redis-py: a read
    that fails (a timeout, a reset, the server's end of file) is read again by its
    ``read_response`` from a socket that fails the same way (``_Replay``); a push notice goes
    to the parser's handler, then redis-py reads the answer; a broken reply, a LOADING reply
    or one inside an array drop the connection, as redis-py does."""
    parser = connection._parser
    reader = parser._reader
    if reader is None:  # dropped (by a push notice's handler): redis-py's error
        return connection.read_response()
    try:
        response = reader.gets()
    except BaseException as error:  # a broken reply: nothing after it can be read
        drop(connection, error)
        raise
    if response is NOT_ENOUGH_DATA:
        sock = parser._sock
        buffer = parser._buffer
        while response is NOT_ENOUGH_DATA:
            try:
                size = sock.recv_into(buffer)
            except BaseException as error:
                return _read_by_redis_py(connection, parser, sock, error)
            if not size:
                return _read_by_redis_py(connection, parser, sock, None)
            try:
                reader.feed(buffer, 0, size)
                response = reader.gets()
            except BaseException as error:
                drop(connection, error)
                raise
    return settled(connection, parser, response)


def settled(connection: Any, parser: Any, response: Any) -> Any:
    """A whole reply hiredis gave, as redis-py's ``read_response`` ends with it: a push
    notice handled and the next reply read, a connection error dropping the connection, the
    health check's clock moved on, an error reply raised."""
    push = parser._hiredis_PushNotificationType
    if push is not None and isinstance(response, push):
        handle_push(connection, parser, response)
        return connection.read_response()
    failed = response
    if isinstance(response, list) and response:
        failed = response[0]
    if isinstance(failed, redis.ConnectionError):
        drop(connection, failed)
        raise failed
    if connection.health_check_interval:
        connection.next_health_check = time.monotonic() + connection.health_check_interval
    if isinstance(response, redis.ResponseError):
        raise response
    return response


def _read_by_redis_py(connection: Any, parser: Any, sock: Any, error: BaseException | None) -> Any:
    """``connection.read_response()`` with the parser's socket replaced, for its first
    read, by one that gives what ours gave (``error`` raised, or the end of file): redis-py
    turns it into its own exception and drops the connection, as if it had read itself."""
    parser._sock = _Replay(sock, error)
    try:
        return connection.read_response()
    finally:
        if isinstance(parser._sock, _Replay):  # still connected (not reached in practice)
            parser._sock = sock


class _Replay:
    """A socket whose next ``recv_into`` gives what the real one gave: ``error`` raised,
    or nothing read (the server closed it); then the real socket's again."""

    __slots__ = ("error", "sock", "used")

    def __init__(self, sock: Any, error: BaseException | None) -> None:
        self.sock = sock
        self.error = error
        self.used = False

    def recv_into(self, buffer: Any, *args: Any) -> int:
        if self.used:
            return int(self.sock.recv_into(buffer, *args))
        self.used = True
        if self.error is not None:
            raise self.error
        return 0

    def settimeout(self, timeout: Any) -> None:
        self.sock.settimeout(timeout)


def handle_push(connection: Any, parser: Any, notice: Any) -> None:
    """Hand a push notice to the parser's handler; its errors raised as redis-py's
    ``read_response`` raises them (a socket's timeout or error as redis-py's own, which the
    store counts as an outage), the connection dropped."""
    where = connection._host_error()
    try:
        parser.handle_push_response(notice)
    except (TimeoutError, redis.TimeoutError) as error:
        drop(connection, error)
        raise redis.TimeoutError(f"Timeout reading from {where}") from None
    except OSError as error:
        drop(connection, error)
        raise redis.ConnectionError(f"Error while reading from {where} : {error.args}") from error
    except BaseException as error:
        drop(connection, error)
        raise


def drop(connection: Any, error: BaseException) -> None:
    """What redis-py's ``read_response`` does with a connection whose reply failed."""
    add_debug_log_for_connection_failure(connection, error, "reading response")
    connection.disconnect()
