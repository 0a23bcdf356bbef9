"""Log output: one JSON object per line (or plain text for development), every record masked.

Owns the handler, the formatters and ``configure_logging``, with the secret mask in mask.py;
it must not decide *what* is logged. The first rule stays "never log a secret": the mask is
the safety net behind it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

from oidc_link.logs import held
from oidc_link.logs.descriptor import descriptor_of, write_whole
from oidc_link.logs.line_time import LineTime
from oidc_link.logs.mask import PUBLIC_FIELDS, mask, mask_value, masked_email, may_hold_secret

# The mask's functions are imported from here too (interaction.py names people through
# masked_email).
__all__ = ["mask", "mask_value", "masked_email"]

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The fields a request line carries (web/request_log.py), in the order they are written.
REQUEST_FIELDS = ("request_id", "client_id", "route", "method", "status", "duration_ms")

# What the standard library puts on every LogRecord; anything else came as ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys()
) | {"message", "asctime", "taskName"}
# The keys every JSON line starts with; an extra of the same name does not replace them.
_LINE_HEAD = frozenset({"time", "level", "logger", "message"})
# Values the mask leaves as they are (bool is an int); checked by exact type, fast.
PLAIN_NUMBERS = frozenset({int, float, bool})
# A line is encoded by orjson, in C: 0.25 µs where the standard library's encoder takes
# 2.9 µs, and fewer of the processor's caches disturbed in a busy server (docs/performance.md
# "Issue 16 levers"). Dataclasses and datetimes go to ``default`` as with the standard
# library: written as their text.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# What orjson refuses (an int beyond 64 bits, a key that is not a string, a lone surrogate)
# the standard library writes, in the same compact form. default=str: an extra that JSON
# cannot hold is written as its text, never dropped.
_encode_slowly = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def encode_line(line: dict[str, Any]) -> str:
    try:
        return orjson.dumps(line, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return _encode_slowly(line)


_ORJSON_LINE_OPTIONS = _ORJSON_OPTIONS | orjson.OPT_APPEND_NEWLINE


def encode_line_bytes(line: dict[str, Any]) -> bytes:
    """``encode_line(line) + "\n"`` in UTF-8, as orjson makes it (no text in between)."""
    try:
        return orjson.dumps(line, default=str, option=_ORJSON_LINE_OPTIONS)
    except TypeError:
        return (_encode_slowly(line) + "\n").encode("utf-8", "backslashreplace")


# Set on a record whose JSON line logs/direct.py has written: our handler only masks it.
LINE_WRITTEN = "_line_written"
# werkzeug's development server ends its access line's format string with this.
_WERKZEUG_ACCESS_LINE = '"%s" %s %s'

# The request being answered, set by the web layer: every line logged while answering it
# carries its id, so an operator can gather one request's lines.
current_request_id: ContextVar[str | None] = ContextVar("oidc_link_request_id", default=None)


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the log call passed as ``extra``."""
    return {
        name: value
        for name, value in vars(record).items()
        if name not in _RECORD_ATTRIBUTES and not name.startswith("_")
    }


def _extras_in_line_order(attributes: dict[str, Any]) -> dict[str, Any]:
    """The extras of a record's ``vars``: the request fields first, in their fixed order (so
    lines read alike), then the others as the log call gave them."""
    # The set difference runs in C; most records carry a handful of extras among ~25 names.
    names = attributes.keys() - _RECORD_ATTRIBUTES
    fields = {name: attributes[name] for name in REQUEST_FIELDS if name in names}
    left = len(names) - len(fields)
    if left:
        # ``extra`` is set after everything LogRecord sets, so the others sit at the end
        # of ``vars``: walked from there, the walk stops once each has been seen.
        others = []
        for name in reversed(attributes):
            if name in names and name not in fields:
                if not name.startswith("_"):
                    others.append(name)
                left -= 1
                if not left:
                    break
        for name in reversed(others):
            fields[name] = attributes[name]
    return fields


NOTHING_PUBLIC: frozenset[str] = frozenset()


def holds_only_plain_text(message: str, fields: dict[str, Any]) -> bool:
    """True when no rule of the mask could change the message or any field: every field is
    a string, a number or None, and the strings joined (one check instead of one per
    string) show no sign of a secret. Joined on a newline, which no rule matches across,
    the text holds a sign exactly when one of its parts does."""
    texts = [message]
    for value in fields.values():
        kind = type(value)
        if kind is str:
            texts.append(value)
        elif value is not None and kind not in PLAIN_NUMBERS:
            return False
    return not may_hold_secret("\n".join(texts))


def mask_record(record: logging.LogRecord) -> dict[str, Any]:
    """Rewrite ``record`` in place so that every handler sees only masked text: the message
    (with its arguments merged in), the extra fields and the traceback. Returns the masked
    fields in the order a JSON line writes them (kept on the record for the formatter)."""
    attributes = record.__dict__
    done = attributes.get("_masked_fields")
    if done is not None:
        return done
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a broken format string must not hide the record
        message = f"{record.msg!s} {record.args!r}"
    fields = _extras_in_line_order(attributes)
    record.args = None
    if not (record.exc_info or record.exc_text or record.stack_info) and holds_only_plain_text(
        message, fields
    ):
        record.msg = message
        attributes["_masked_fields"] = fields
        return fields
    public = NOTHING_PUBLIC
    if not PUBLIC_FIELDS.isdisjoint(fields):
        public = frozenset(str(fields[name]) for name in PUBLIC_FIELDS if fields.get(name))
    record.msg = mask(message, public)
    for name, value in fields.items():
        # Most values are short strings without a trigger, numbers or None: told apart
        # here rather than through mask_value's dispatch, with the same outcome.
        if type(value) is str:
            if not may_hold_secret(value):
                continue
        elif value is None or type(value) in PLAIN_NUMBERS:
            continue
        if name not in PUBLIC_FIELDS:
            fields[name] = attributes[name] = mask_value(value)
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    attributes["_masked_fields"] = fields
    return fields


class SecretMask(logging.Filter):
    """``mask_record`` as a filter, for a handler other than ours (ours masks by itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def stamp_request_id(record: logging.LogRecord) -> None:
    """Add the id of the request being answered, unless the record carries one."""
    request_id = current_request_id.get()
    if request_id and record.__dict__.get("request_id") is None:
        record.request_id = request_id


class JsonFormatter(LineTime, logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def __init__(self) -> None:
        logging.Formatter.__init__(self)
        LineTime.__init__(self)

    def format(self, record: logging.LogRecord) -> str:
        return encode_line(self.line_of(record))

    def line_of(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's line as the dict ``format`` encodes."""
        attributes = record.__dict__
        fields = attributes.get("_masked_fields")
        if fields is None:  # a record that did not pass the mask
            fields = _extras_in_line_order(attributes)
        line: dict[str, Any] = {
            "time": self.time_text(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if _LINE_HEAD.isdisjoint(fields):
            line.update(fields)
        else:  # an extra named like a head field does not replace it
            for name, value in fields.items():
                line.setdefault(name, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return line


class LineHandler(logging.StreamHandler):
    """Our handler on the root logger. It stamps the request id on each record, marks the
    development server's access line and masks the record itself, in one call rather than
    as three filters; it formats the line before it takes the stream's lock and holds the
    lock only to write it: request threads do not queue behind another thread's formatting
    (logging.Handler.handle holds the lock through ``emit``). Each line is written whole, at
    once, in one ``write`` system call to a stream over a file descriptor (stderr, a file;
    logs/descriptor.py), else written and flushed: none waits in a buffer, so none is lost
    if the process dies."""

    def __init__(self, stream: TextIO, drop_server_access_lines: bool = False) -> None:
        super().__init__(stream)
        self._drop_server_access_lines = drop_server_access_lines
        self._descriptor = descriptor_of(stream)

    def setStream(self, stream: TextIO) -> TextIO | None:  # noqa: N802 - logging's name
        with self.lock:
            previous = super().setStream(stream)
            self._descriptor = descriptor_of(self.stream)
        return previous

    def handle(self, record: logging.LogRecord) -> bool:
        # Even a record this handler then drops is masked: it is shared with any handler
        # after this one.
        if "_masked_fields" not in record.__dict__:
            stamp_request_id(record)
            _mark_server_access_line(record)
            mask_record(record)
        if self.filters:  # filters someone added to ours
            passed = self.filter(record)
            if not passed:
                return False
            if isinstance(passed, logging.LogRecord):  # Python 3.12: a filter may replace it
                record = passed
        if self._drop_server_access_lines and "_server_access_line" in record.__dict__:
            # Our request line (web/request_log.py) replaces it, without the query string.
            return False
        if record.__dict__.get(LINE_WRITTEN):  # logs/direct.py wrote its line already
            return True
        formatter = self.formatter
        try:
            if type(formatter) is JsonFormatter:
                self.write_fields(formatter.line_of(record), record)
                return True
            line = self.format(record) + self.terminator
        except RecursionError:  # as logging.StreamHandler.emit: see CPython issue 36272
            raise
        except Exception:
            self.handleError(record)
            return True
        self.write_line(line, record)
        return True

    def write_fields(self, fields: dict[str, Any], record: logging.LogRecord | None = None) -> None:
        """Write ``fields`` as one JSON line: as bytes, in one ``write`` system call, to a
        stream that is a file descriptor taking UTF-8 (stderr, a file); as text otherwise.
        While a request holds its lines (logs/held.py) the line waits for the others."""
        if self._descriptor is None or self.terminator != "\n":
            self.write_line(encode_line(fields) + self.terminator, record)
            return
        line = encode_line_bytes(fields)
        if not held.keep(self, line):
            self.write_now(line, record)

    def write_last_fields(self, fields: dict[str, Any]) -> None:
        """Write ``fields`` as ``write_fields`` does, as the request's own line and its last:
        after the lines the request held, in one write, ending the holding (logs/held.py)."""
        if self._descriptor is None or self.terminator != "\n":
            held.write_last(self, encode_line(fields) + self.terminator)
            return
        try:  # encode_line_bytes, written out: one call fewer on every request line
            line = orjson.dumps(fields, default=str, option=_ORJSON_LINE_OPTIONS)
        except TypeError:
            line = encode_line_bytes(fields)
        held.write_last(self, line)

    def write_line(self, line: str, record: logging.LogRecord | None = None) -> None:
        """Write one finished line (or hold it with the request's others)."""
        if not held.keep(self, line):
            self.write_now(line, record)

    def write_now(self, data: bytes | str, record: logging.LogRecord | None = None) -> None:
        """Write finished lines at once: bytes to the descriptor in one system call, text to
        the stream, then flushed. ``record`` is what an error report names."""
        with self.lock:
            try:
                if type(data) is bytes:
                    # logs/descriptor.py write_whole, its usual case written out: the
                    # line in one system call.
                    written = os.write(self._descriptor, data)  # type: ignore[arg-type]
                    if written < len(data):  # a signal cut it short: the rest follows
                        write_whole(self._descriptor, data[written:])  # type: ignore[arg-type]
                else:
                    self.stream.write(data)  # type: ignore[arg-type]
                    self.stream.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(record or logging.makeLogRecord({"msg": data}))


class TextFormatter(logging.Formatter):
    """For a person at a terminal: ``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {name: value for name, value in extra_fields(record).items() if value is not None}
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        shown = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{first} {shown}{newline}{rest}"


# The JSON handler configure_logging installed last, if it did (logs/direct.py writes
# through it); None for text or before any.
json_handler: LineHandler | None = None


def _mark_server_access_line(record: logging.LogRecord) -> None:
    """Mark the development server's access line, recognised by its format string before
    the mask merges it with its arguments: the JSON handler leaves it out."""
    if (
        record.name == "werkzeug"
        and isinstance(record.msg, str)
        and record.msg.endswith(_WERKZEUG_ACCESS_LINE)
    ):
        record._server_access_line = True


# What ``logging`` gathers for every record and neither of our formats writes: the caller's
# file, line and function (a walk up the stack: ``_srcfile``), the thread, the process and
# (3.12+) the asyncio task. The logging HOWTO's "Optimization" section names these switches.
_UNWRITTEN_RECORD_FACTS = ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")


def _gather_only_what_lines_write() -> None:
    logging._srcfile = None  # type: ignore[attr-defined]
    for switch in _UNWRITTEN_RECORD_FACTS:
        setattr(logging, switch, False)


def configure_logging(
    log_format: str = "text", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records through one masked handler on the root logger.

    Safe to call more than once (each worker of a pre-fork server calls it after the fork):
    the handler it installed before is replaced, others' handlers are left alone. Records
    no longer carry their caller, thread or process (no line shows them; see above).
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    json_lines = log_format == "json"
    handler = LineHandler(stream or sys.stderr, drop_server_access_lines=json_lines)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler._oidc_link = True  # type: ignore[attr-defined]
    global json_handler
    json_handler = handler if json_lines else None
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_oidc_link", False)]:
        root.removeHandler(old)
    # First among the root's handlers: the mask rewrites each record in place, so any
    # handler after it (a server's, a test's capture) sees the masked record too.
    root.handlers.insert(0, handler)
    root.setLevel(level.upper())
    _gather_only_what_lines_write()
    # Libraries that would otherwise print bodies or tokens at DEBUG stay quieter than us.
    logging.getLogger("authlib").setLevel(max(logging.INFO, root.level))
    return handler
