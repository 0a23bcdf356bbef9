"""A request's lines held until it is answered and written together, in one write: a sign-in
step's event line (``sms.sent``, ``tokens.issued``) goes out with its request line instead of
in a system call of its own. Lines logged outside a request, or by another thread than the
one answering it, are written at once, as before.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from typing import Protocol


class _Writer(Protocol):
    def write_now(self, data: bytes | str) -> None: ...


class _Held:
    """The lines one request has logged so far, for one handler (ours)."""

    __slots__ = ("lines", "thread", "writer")

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.writer: _Writer | None = None
        self.lines: list[bytes | str] = []


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


def write_held(token: Token[_Held | None] | None = None) -> None:
    """Write what the request has held, in one write, and stop holding: a line logged after
    this goes out at once. With the token ``hold_lines`` gave, also forget the holding."""
    held = _held.get()
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
