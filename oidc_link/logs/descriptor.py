"""A finished JSON line written straight to the file descriptor under the log's stream: one
``write`` system call per line, without the stream's text layer and buffer in between.
"""

from __future__ import annotations

import codecs
import os
from typing import TextIO


def descriptor_of(stream: TextIO) -> int | None:
    """The file descriptor under ``stream`` when a line may go to it directly (stderr, a
    file): each line then goes out whole, at once, as it did after the stream's flush. None
    for a stream without one (a StringIO, a test's capture) or one that writes another
    encoding than orjson's UTF-8."""
    try:
        descriptor = stream.fileno()
        encoding = codecs.lookup(stream.encoding).name
    except (AttributeError, OSError, ValueError, TypeError, LookupError):
        return None
    if encoding != "utf-8":
        return None
    stream.flush()  # what was written the text way goes first
    return descriptor


def write_whole(descriptor: int, line: bytes) -> None:
    written = os.write(descriptor, line)
    while written < len(line):  # a signal cut the write short: the rest follows
        written += os.write(descriptor, line[written:])
