"""Connection pools that keep one connection per thread: each request thread sends its
commands over its own connection instead of taking one from the shared pool and giving it
back for every command. Knows no command and no key; connection.py builds clients on them.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

# Seconds a pinned connection may stay unused and still be taken without asking the socket
# whether the server closed it (a poll per command otherwise). A command on a connection the
# server closed sooner fails to send or read, and redis-py reconnects and sends it again.
CHECK_AFTER_IDLE = 1.0


class _Pin:
    """A thread's own connection, and whether that thread is using it right now."""

    __slots__ = ("__weakref__", "busy", "connection", "released_at")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.busy = False
        # When its thread last gave it back (time.monotonic()).
        self.released_at = 0.0


class _PinnedConnections:
    """What both pools below add to redis-py's: ``get_connection`` hands a thread the
    connection it had last time, so the pool's lock, its bookkeeping of idle and used
    connections and redis-py's metrics of both are paid once per thread, not per command.

    Thread-safe because a pinned connection only ever serves the thread it is pinned to. If
    that thread asks again while it still holds it (a command sent while a pipeline or a
    pub/sub holds it), it gets a pooled one as before. A pinned connection is checked as a
    pooled one is when taken and given back (reconnected if the server closed it, or if
    Sentinel names another master now), and goes back to the pool when its thread ends.
    After a fork the pool resets, pins included (redis-py's own pid check).
    """

    _pins: threading.local

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self._pins = threading.local()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.pid != os.getpid():  # type: ignore[attr-defined]
            self._checkpid()  # type: ignore[attr-defined]  # forked: the pool resets
        pin = getattr(self._pins, "pin", None)
        if pin is None:
            connection = super().get_connection(*args, **kwargs)  # type: ignore[misc]
            pin = _Pin(connection)
            # The thread's locals die with it: its connection then serves other threads.
            weakref.finalize(pin, super().release, connection)  # type: ignore[misc]
            self._pins.pin = pin
        elif pin.busy:
            return super().get_connection(*args, **kwargs)  # type: ignore[misc]
        else:
            if not self.owns_connection(pin.connection):  # type: ignore[attr-defined]
                # What release() would have found: Sentinel has named another master since
                # this connection was made. It connects again, to the master named now.
                pin.connection.disconnect()
            if time.monotonic() - pin.released_at > CHECK_AFTER_IDLE:
                self.ensure_connection(pin.connection)  # type: ignore[attr-defined]
            elif not pin.connection._sock:
                # At once when an error disconnected it. (connect() itself returns when the
                # socket is open, but only after building two closures and a retry loop.)
                pin.connection.connect()
        pin.busy = True
        return pin.connection

    def release(self, connection: Any) -> None:
        pin = getattr(self._pins, "pin", None)
        if pin is not None and pin.connection is connection:
            pin.busy = False
            pin.released_at = time.monotonic()
            return
        super().release(connection)  # type: ignore[misc]


class PinnedConnectionPool(_PinnedConnections, redis.ConnectionPool):
    """redis-py's ConnectionPool, one connection pinned to each thread."""


class PinnedSentinelConnectionPool(_PinnedConnections, SentinelConnectionPool):
    """redis-py's SentinelConnectionPool (connections that ask the Sentinels for the master
    whenever they connect), one connection pinned to each thread."""
