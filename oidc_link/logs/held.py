"""A request's lines held until it is answered and written together, in one write, and the
one step event (``sms.sent``, ``tokens.issued``) kept to be written on the request's own line
(logs/direct.py ``write_event``). Lines logged outside a request, or by another thread than
the one answering it, are written at once, as before.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from typing import Protocol


class _Writer(Protocol):
    def write_now(self, data: bytes | str) -> None: ...


class _Event(Protocol):
    """A step's event kept for the request line (logs/direct.py ``Event``)."""

    def write_alone(self) -> None:
        """Write the event as a line of its own: no request line took it."""


class _Held:
    """The lines one request has logged so far, for one handler (ours), and its event."""

    __slots__ = ("event", "lines", "thread", "writer")

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.writer: _Writer | None = None
        self.lines: list[bytes | str] = []
        self.event: _Event | None = None


_held: ContextVar[_Held | None] = ContextVar("oidc_link_held_lines", default=None)


def hold_lines() -> Token[_Held | None]:
    """From now until ``write_held``, this thread's lines wait for the request's end."""
    return _held.set(_Held())


def keep(writer: _Writer, line: bytes | str) -> bool:
    """Hold ``line`` for ``writer`` when a request is holding its lines in this thread; False
    (write it now) otherwise."""
    held = _held.get()
    if held is None or held.thread != threading.get_ident():
        return False
    if held.writer is None:
        held.writer = writer
    elif held.writer is not writer or type(line) is not type(held.lines[0]):
        return False  # the log was configured again meanwhile: no mixing
    held.lines.append(line)
    return True


def keep_event(event: _Event) -> bool:
    """Keep ``event`` for the request line when a request is holding its lines in this
    thread and has kept no event yet; False (write it as a line of its own) otherwise."""
    held = _held.get()
    if held is None or held.event is not None or held.thread != threading.get_ident():
        return False
    held.event = event
    return True


def take_event() -> _Event | None:
    """The event this thread's request has kept, if any; from now it keeps none."""
    held = _held.get()
    if held is None or held.event is None or held.thread != threading.get_ident():
        return None
    event, held.event = held.event, None
    return event


def write_last(writer: _Writer, line: bytes | str) -> None:
    """Write ``line``, the request's own line and its last, after the lines the request has
    held, in one write, and stop holding (``write_held`` then finds nothing to write). Without
    a request holding its lines in this thread, ``line`` is written at once."""
    held = _held.get()
    if held is None or held.thread != threading.get_ident() or held.event is not None:
        if not keep(writer, line):  # an event still kept: write_held writes it first
            writer.write_now(line)
        return
    _held.set(None)
    lines = held.lines
    if not lines:  # most requests: their line alone
        writer.write_now(line)
        return
    held.lines = []
    if held.writer is writer and type(line) is type(lines[0]):
        lines.append(line)
        writer.write_now(b"".join(lines) if type(line) is bytes else "".join(lines))  # type: ignore[arg-type]
    else:  # the log was configured again meanwhile: no mixing
        held.writer.write_now(b"".join(lines) if type(lines[0]) is bytes else "".join(lines))  # type: ignore[arg-type, union-attr]
        writer.write_now(line)


def write_held(token: Token[_Held | None] | None = None) -> None:
    """Write what the request has held, in one write, and stop holding: a line logged after
    this goes out at once. With the token ``hold_lines`` gave, also forget the holding. An
    event no request line took (none was written) gets its own line, among the others."""
    held = _held.get()
    if held is not None and held.event is not None and held.thread == threading.get_ident():
        event, held.event = held.event, None
        event.write_alone()  # held with the others while they are still held
    if token is not None:
        try:
            _held.reset(token)
        except ValueError:  # torn down in another context than set: just forget it
            _held.set(None)
    elif held is not None:
        _held.set(None)
    if held is None or held.writer is None or held.thread != threading.get_ident():
        return
    lines, held.lines = held.lines, []
    if lines:
        joined = b"".join(lines) if type(lines[0]) is bytes else "".join(lines)  # type: ignore[arg-type]
        held.writer.write_now(joined)
