"""The time a JSON line starts with: UTC, to the millisecond, as ``datetime.isoformat``
writes it; the date and the time of day formatted once per second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

# ".000+00:00" to ".999+00:00": a line's time ends with one of these.
_MILLISECONDS = tuple(f".{millisecond:03d}+00:00" for millisecond in range(1000))


class LineTime:
    """The last whole second written and its text: a busy server writes many lines in each
    second and formats its date and time once (threads share it safely: the pair is
    replaced in one assignment, and any pair read is a right one)."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def now_text(self) -> str:
        """Now, as ``time_text(time.time())`` writes it: ``nanoseconds_text`` of now, written
        out here (one call fewer for every line)."""
        second, millisecond = divmod((time.time_ns() + 500) // 1_000_000, 1000)
        cached_second, text = self._second
        if second != cached_second:
            return self.nanoseconds_text(second * 1_000_000_000 + millisecond * 1_000_000)
        return text + _MILLISECONDS[millisecond]

    def nanoseconds_text(self, since_epoch: int) -> str:
        """``since_epoch`` nanoseconds rounded to the microsecond, then cut to the
        millisecond, as ``time_text`` writes a float: in integers, without ``round`` or a
        format call, which cost a line several microseconds in a busy server. (Adding 500
        ns then cutting to the millisecond is the same as rounding to the microsecond, then
        cutting: a microsecond count ends in three digits the cut drops.)"""
        second, millisecond = divmod((since_epoch + 500) // 1_000_000, 1000)
        cached_second, text = self._second
        if second != cached_second:
            text = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]
            self._second = (second, text)
        return text + _MILLISECONDS[millisecond]

    def time_text(self, created: float) -> str:
        """``created`` as ``datetime.fromtimestamp(created, UTC).isoformat(timespec=
        "milliseconds")`` writes it, rounded to the microsecond the same way first."""
        second = int(created)
        microsecond = round((created - second) * 1e6)
        if microsecond >= 1_000_000:
            second, microsecond = second + 1, microsecond - 1_000_000
        cached_second, text = self._second
        if second != cached_second:
            text = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]
            self._second = (second, text)
        return f"{text}.{microsecond // 1000:03d}+00:00"
