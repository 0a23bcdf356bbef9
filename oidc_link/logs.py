"""Log output: one JSON object per line (or plain text for development), every record masked.

Owns the formatters, the secret mask and ``configure_logging``; it must not decide *what* is
logged. The first rule stays "never log a secret": the mask is the safety net behind it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The fields a request line carries (web/request_log.py), in the order they are written.
REQUEST_FIELDS = ("request_id", "client_id", "route", "method", "status", "duration_ms")
REDACTED = "[redacted]"
# Extra fields whose values are public by definition and kept as they are: a key id is in
# the JWKS for anyone to read, and operators match it against ``oidc-link keys list``.
PUBLIC_FIELDS = frozenset({"kid"})

# What the standard library puts on every LogRecord; anything else came as ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys()
) | {"message", "asctime", "taskName"}
# The keys every JSON line starts with; an extra of the same name does not replace them.
_LINE_HEAD = frozenset({"time", "level", "logger", "message"})
# Values the mask leaves as they are (bool is an int); checked by exact type, fast.
_PLAIN_NUMBERS = frozenset({int, float, bool})
# One encoder for every line: json.dumps builds a new one per call when given options.
# default=str: an extra that JSON cannot hold is written as its text, never dropped.
_encode_line = json.JSONEncoder(ensure_ascii=False, default=str).encode
# werkzeug's development server ends its access line's format string with this.
_WERKZEUG_ACCESS_LINE = '"%s" %s %s'

# The request being answered, set by the web layer: every line logged while answering it
# carries its id, so an operator can gather one request's lines.
current_request_id: ContextVar[str | None] = ContextVar("oidc_link_request_id", default=None)

# --- The mask: each rule finds one shape of secret; the order matters. ---

# JWTs (ID tokens, logout tokens, client assertions): a base64url JSON header starts "eyJ".
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# Our /v1 API secret keys (sk_live_..., sk_test_...) and restricted keys.
_API_KEY = re.compile(r"\b([sr]k_(?:live|test))_[A-Za-z0-9_-]+")
# Credentials in an Authorization header (RFC 6750 §2.1 Bearer, RFC 7617 Basic).
_AUTHORIZATION = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A password in a URL's userinfo, such as redis://:secret@host (RFC 3986 §3.2.1).
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@", re.IGNORECASE)
# A query string: it may hold a login_hint (an email), an id_token_hint, or at a client's
# callback an authorization code (RFC 6749 §4.1.2). Only a '?' glued to a path counts.
_QUERY = re.compile(r"(?<=[A-Za-z0-9/._~%-])\?[^\s\"'<>]+")
# name=value or "name": "value" where the name says it holds a secret (form bodies, reprs).
_SENSITIVE_FIELDS = (
    r"(?:access_token|refresh_token|id_token(?:_hint)?|logout_token|token|code(?:_verifier)?"
    r"|client_secret|client_assertion|secret|password|api_key|authorization|login_hint"
    r"|request_uri|csrf_token)"
)
# ``name: value`` counts only with the name quoted (JSON, a dict's repr): "status code: 400"
# in prose is no secret.
_NAMED_SECRET = re.compile(
    rf"""(?P<name>\b{_SENSITIVE_FIELDS}\s*=\s*|["']{_SENSITIVE_FIELDS}["']\s*:\s*)"""
    rf"""(?P<quote>["']?)[^\s"'&,;)}}\]]+""",
    re.IGNORECASE,
)
# An email address, also URL-encoded (%40); the domain stays, operators need it.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@|%40)"
    r"([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
)
# What our bearer secrets look like when nothing names them: new_secret() gives 32+
# base64url characters (codes, tokens, Account Link tokens, cookies). Short prefixed ids (req_,
# acct_, fam_) stay readable; a digest or thumbprint this long is masked too, harmlessly.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")


def _opaque(match: re.Match[str], public: frozenset[str] = frozenset()) -> str:
    value = match.group(0)
    if value in public:
        return value
    kinds = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
        )
    )
    # Plain words (snake_case names, all-lowercase identifiers) are not secrets.
    return REDACTED if kinds >= 2 else value


# Whatever any rule below can match holds one of these characters or words, or a run of 32
# base64url characters: most fields of most lines (ids, routes, methods, request lines)
# have none and skip every regex. Checked with set and substring tests, which cost a
# fraction of one regex pass over the text.
_TRIGGER_CHARACTERS = frozenset("@?=:%")
_LONG_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32}")


def _may_hold_secret(text: str) -> bool:
    """False only when no rule of the mask could match anything in ``text``."""
    if not _TRIGGER_CHARACTERS.isdisjoint(text):
        return True  # queries, name=value, URLs with a password, emails (also as %40)
    if "eyJ" in text or "k_live_" in text or "k_test_" in text:
        return True  # JWTs, API keys
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        return True  # Authorization credentials
    return len(text) >= 32 and _LONG_RUN.search(text) is not None  # opaque secrets


_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_JWT, "[jwt]"),
    (_API_KEY, rf"\1_{REDACTED}"),
    (_AUTHORIZATION, rf"\1 {REDACTED}"),
    (_URL_PASSWORD, rf"\1:{REDACTED}@"),
    (_QUERY, f"?{REDACTED}"),
    (_NAMED_SECRET, rf"\g<name>\g<quote>{REDACTED}"),
    (_EMAIL, r"\1***\2\3"),
    (_OPAQUE, _opaque),
)


def mask(text: str, public: frozenset[str] = frozenset()) -> str:
    """``text`` with emails shortened to ``j***@example.com`` and secrets replaced; the
    ``public`` values (key ids the record names as such) are left as they are."""
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _RULES:
        if replacement is _opaque and public:
            text = pattern.sub(lambda match: _opaque(match, public), text)
        else:
            text = pattern.sub(replacement, text)
    return text


def masked_email(email: str | None) -> str | None:
    """``jenny@example.com`` as ``j***@example.com``: for log calls that name a person."""
    return _EMAIL.sub(r"\1***\2\3", email) if email else email


def mask_value(value: Any) -> Any:
    """Mask every string inside ``value`` (dicts, lists, tuples, sets: to any depth)."""
    if isinstance(value, str):
        return mask(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {mask(str(key)): mask_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(item) for item in value]
    return mask(str(value))


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
    if len(fields) < len(names):
        for name in attributes:
            if name in names and name not in fields and not name.startswith("_"):
                fields[name] = attributes[name]
    return fields


class SecretMask(logging.Filter):
    """Rewrites a record in place, so that every handler after it sees only masked text:
    the message (with its arguments merged in), the extra fields and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_masked", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string must not hide the record
            message = f"{record.msg!s} {record.args!r}"
        attributes = vars(record)
        fields = _extras_in_line_order(attributes)
        public = frozenset(
            str(fields[name]) for name in PUBLIC_FIELDS.intersection(fields) if fields[name]
        )
        record.msg = mask(message, public)
        record.args = None
        for name, value in fields.items():
            # Most values are short strings without a trigger, numbers or None: told apart
            # here rather than through mask_value's dispatch, with the same outcome.
            if type(value) is str:
                if not _may_hold_secret(value):
                    continue
            elif value is None or type(value) in _PLAIN_NUMBERS:
                continue
            if name not in PUBLIC_FIELDS:
                fields[name] = attributes[name] = mask_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        # The masked fields in the order a JSON line writes them: the formatter reuses them.
        record._masked_fields = fields
        record._masked = True
        return True


class RequestIdStamp(logging.Filter):
    """Adds the id of the request being answered to records that do not carry one."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id and getattr(record, "request_id", None) is None:
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def __init__(self) -> None:
        super().__init__()
        # The last whole second written and its text: a busy server writes many lines in
        # each second and formats its date and time once (threads share it safely: the
        # pair is replaced in one assignment, and any pair read is a right one).
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = vars(record)
        fields = attributes.get("_masked_fields")
        if fields is None:  # a record that did not pass SecretMask
            fields = _extras_in_line_order(attributes)
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
        return _encode_line(line)

    def _time(self, created: float) -> str:
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


class LineHandler(logging.StreamHandler):
    """A stream handler that formats a record before it takes the stream's lock, and holds
    the lock only to write the finished line: request threads do not queue behind another
    thread's formatting (logging.Handler.handle holds the lock through ``emit``)."""

    def handle(self, record: logging.LogRecord) -> bool:
        passed = self.filter(record)
        if not passed:
            return False
        if isinstance(passed, logging.LogRecord):  # Python 3.12: a filter may replace it
            record = passed
        try:
            line = self.format(record) + self.terminator
        except RecursionError:  # as logging.StreamHandler.emit: see CPython issue 36272
            raise
        except Exception:
            self.handleError(record)
            return True
        with self.lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(record)
        return True


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


class _ServerAccessLineMark(logging.Filter):
    """Marks the development server's access line, recognised by its format string before
    the mask merges it with its arguments; the handler drops marked lines in the end."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name == "werkzeug"
            and isinstance(record.msg, str)
            and record.msg.endswith(_WERKZEUG_ACCESS_LINE)
        ):
            record._server_access_line = True
        return True


def _not_a_server_access_line(record: logging.LogRecord) -> bool:
    # Our request line (web/request_log.py) replaces it, without the query string.
    return not getattr(record, "_server_access_line", False)


def configure_logging(
    log_format: str = "text", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger's records through one masked handler on the root logger.

    Safe to call more than once (each worker of a pre-fork server calls it after the fork):
    the handler it installed before is replaced, others' handlers are left alone.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    if level.upper() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    handler = LineHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # The mask runs on every record, even one this handler then drops: the record is
    # shared with any handler after this one.
    handler.addFilter(_ServerAccessLineMark())
    handler.addFilter(RequestIdStamp())
    handler.addFilter(SecretMask())
    if log_format == "json":
        handler.addFilter(_not_a_server_access_line)
    handler._oidc_link = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_oidc_link", False)]:
        root.removeHandler(old)
    # First among the root's handlers: the mask rewrites each record in place, so any
    # handler after it (a server's, a test's capture) sees the masked record too.
    root.handlers.insert(0, handler)
    root.setLevel(level.upper())
    # Libraries that would otherwise print bodies or tokens at DEBUG stay quieter than us.
    logging.getLogger("authlib").setLevel(max(logging.INFO, root.level))
    return handler
