"""A JSON line written straight from its parts, for the lines oidc-link writes on every
request: the same line, masked the same way, without the ``LogRecord`` the logging module
builds and dispatches for each one (record, filters, handlers), which cost more than the line.

A handler other than ours still gets a record for each such line (our handler then only
masks it for them), so a capture, a test's caplog or an operator's handler misses nothing.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import oidc_link.logs as logs
from oidc_link.logs import held
from oidc_link.logs.mask import PUBLIC_FIELDS, mask, mask_value, may_hold_secret

# A line's level as its JSON text; other levels are written as logging names them.
_LEVEL_NAMES = {
    level: logging.getLevelName(level).lower()
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
}


# The request fields after the request id, which the line places itself.
_LATER_REQUEST_FIELDS = logs.REQUEST_FIELDS[1:]


def write_line(
    logger: logging.Logger,
    level: int,
    message: str,
    arguments: tuple[Any, ...],
    fields: dict[str, Any],
) -> None:
    """Log ``message % arguments`` with ``fields`` as ``logger.log(level, message,
    *arguments, extra=fields)`` would, when the level is enabled. No field may be named
    like one of the line's head (time, level, logger, message)."""
    if not logger.isEnabledFor(level):
        return
    ours = logs.json_handler
    others = _other_handlers(logger, level, ours)
    line = None
    if ours is not None and others is not None:
        try:
            line = _json_line(ours, logger.name, level, message % arguments, fields)
        except Exception:  # the ordinary way below reports what went wrong
            line = None
    if ours is None or line is None:  # no JSON handler of ours reaches this logger, ...
        logger.handle(_record(logger, level, message, arguments, fields))
        return
    ours.write_fields(line)
    if others:
        record = _record(logger, level, message, arguments, fields)
        record.__dict__[logs.LINE_WRITTEN] = True
        logger.handle(record)


class Event(NamedTuple):
    """A step's event, not yet written: its line is the request's. As its log call gave it
    (for a line of its own, or for handlers besides ours), and as the mask leaves it."""

    logger: logging.Logger
    level: int
    message: str
    arguments: tuple[Any, ...]
    fields: dict[str, Any]
    masked_message: str
    masked_fields: dict[str, Any]

    def write_alone(self) -> None:
        """The event's own line, as ``write_line`` writes it: no request line took it."""
        write_line(self.logger, self.level, self.message, self.arguments, self.fields)


def write_event(
    logger: logging.Logger,
    level: int,
    message: str,
    arguments: tuple[Any, ...],
    fields: dict[str, Any],
) -> None:
    """Log a request's step event (``fields`` name it as ``event``) as ``write_line`` would,
    but on the request's own line when one is being answered in this thread: the request
    line (web/request_log.py) takes the event's logger, message and fields and adds the
    request's, one line where there were two. The first such event of a request only; any
    other, or one logged outside a request, is a line of its own. Masked now, as its own
    line would be: the request line adds only parts it has checked."""
    if not logger.isEnabledFor(level):
        return
    try:
        # As LogRecord.getMessage: a message without arguments is taken as it is.
        text = message % arguments if arguments else message
    except Exception:  # the ordinary way below reports what went wrong
        write_line(logger, level, message, arguments, fields)
        return
    masked_text, masked_fields = text, fields
    if not logs.holds_only_plain_text(text, fields):
        masked_text, masked_fields = _masked(text, fields)
    event = Event(logger, level, message, arguments, fields, masked_text, masked_fields)
    if not held.keep_event(event):
        write_line(logger, level, message, arguments, fields)


def write_checked_line(
    logger: logging.Logger, level: int, text: str, fields: dict[str, Any]
) -> bool:
    """Write the line ``write_line`` would write for a record of ``logger`` at ``level``
    whose message is ``text``, for a caller that has checked it already: the level is
    enabled; ``fields`` start with the request fields, in their order, a request id among
    them; ``text`` and every field are what the mask makes of them: strings for which
    ``may_hold_secret`` is False (a string that never changes may have been checked
    once), numbers or None, or an event's message and fields as ``write_event`` masked
    them. So the line is the masked one, and is written as it is: as the request's last,
    with the lines the request held before it, in one write (logs/held.py ``write_last``).
    False, with nothing written, when the line must go ``write_line``'s way: our JSON
    handler is not the only one the line would reach."""
    ours = logs.json_handler
    # _other_handlers' walk, written out (one call per request line, the log's most
    # frequent): our handler must be reached, and no other at this level.
    if (
        ours is None
        or ours.filters
        or logger.filters
        or logger.disabled
        or level < ours.level
        or not isinstance(ours.formatter, logs.JsonFormatter)
    ):
        return False
    found = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler is ours:
                found = True
            elif level >= handler.level:
                return False
        current = current.parent if current.propagate else None  # type: ignore[assignment]
    if not found:
        return False
    ours.write_last_fields(
        {
            "time": ours.formatter.now_text(),  # type: ignore[union-attr]
            "level": _LEVEL_NAMES.get(level) or logging.getLevelName(level).lower(),
            "logger": logger.name,
            "message": text,
            **fields,
        }
    )
    return True


def _other_handlers(
    logger: logging.Logger, level: int, ours: logs.LineHandler | None
) -> list[logging.Handler] | None:
    """The handlers besides ours that a record of ``logger`` at ``level`` would reach, as
    ``Logger.callHandlers`` finds them; None when ours is not among them or a filter on the
    logger or on our handler must see the record first."""
    if (
        ours is None
        or ours.filters
        or not isinstance(ours.formatter, logs.JsonFormatter)
        or logger.filters
        or logger.disabled
        or level < ours.level
    ):
        return None
    found = False
    others: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler is ours:
                found = True
            elif level >= handler.level:
                others.append(handler)
        current = current.parent if current.propagate else None  # type: ignore[assignment]
    return others if found else None


def _json_line(
    ours: logs.LineHandler, name: str, level: int, message: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """What JsonFormatter writes for the masked record (before encoding), without the
    record, built in one dict."""
    if not logs.holds_only_plain_text(message, fields):
        message, fields = _masked(message, fields)
    line = {
        "time": ours.formatter.now_text(),  # type: ignore[union-attr]
        "level": _LEVEL_NAMES.get(level) or logging.getLevelName(level).lower(),
        "logger": name,
        "message": message,
    }
    # The request fields first, in their order, then the others as given (as the record's
    # line has them). The request being answered names a line that gives no request id,
    # where the record's line has it: first (a field given as None keeps its place).
    request_id = fields.get("request_id")
    if request_id is None:
        request_id = logs.current_request_id.get() or None
    if request_id is not None or "request_id" in fields:
        line["request_id"] = request_id
    for field in _LATER_REQUEST_FIELDS:
        if field in fields:
            line[field] = fields[field]
    line.update(fields)
    if request_id is not None:
        line["request_id"] = request_id
    return line


def _masked(message: str, fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """As ``logs.mask_record`` masks a record's message and fields."""
    public = logs.NOTHING_PUBLIC
    if not PUBLIC_FIELDS.isdisjoint(fields):
        public = frozenset(str(fields[name]) for name in PUBLIC_FIELDS if fields.get(name))
    masked = dict(fields)
    for name, value in fields.items():
        # As mask_record tells them apart: most values are short strings without a sign
        # of a secret (the event's name, a client id), numbers or None; only the others
        # go through mask_value.
        if type(value) is str:
            if not may_hold_secret(value):
                continue
        elif value is None or type(value) in logs.PLAIN_NUMBERS:
            continue
        if name not in PUBLIC_FIELDS:
            masked[name] = mask_value(value)
    return mask(message, public), masked


def _record(
    logger: logging.Logger,
    level: int,
    message: str,
    arguments: tuple[Any, ...],
    fields: dict[str, Any],
) -> logging.LogRecord:
    # Made here rather than by logger.log(), which would first walk the stack for the
    # caller's file and line (no line shows them).
    return logger.makeRecord(
        logger.name, level, __file__, 0, message, arguments, None, None, fields
    )
