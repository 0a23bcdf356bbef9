"""Lines written without a LogRecord (oidc_link/logs/direct.py): the request line's way. The
same line as the record would give, masked the same, and every other handler still gets
its record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from oidc_link.logs import LineHandler, configure_logging, current_request_id
from oidc_link.logs.direct import write_checked_line, write_line
from oidc_link.web.request_log import PlainParts, write_request_line

MESSAGE = "%s %s %d in %s ms"
REQUEST_LOGGER = "oidc_link.requests"
ARGUMENTS = ("POST", "/token", 200, 1.5)


def request_fields() -> dict[str, object]:
    return {
        "request_id": "req_abc",
        "client_id": "shop",
        "route": "/token",
        "method": "POST",
        "status": 200,
        "duration_ms": 1.5,
        "event": "http.request",
    }


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    yield stream


@pytest.fixture
def lone(output: io.StringIO) -> Iterator[logging.Logger]:
    """A logger whose records reach our handler and no other (a test run's own capture
    handlers sit on the root logger): the line is written with no record at all."""
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, LineHandler))
    logger = logging.getLogger("oidc_link.tests.direct")
    logger.propagate = False
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    logger.propagate = True


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_written_without_a_record_is_the_one_its_record_would_give(
    lone: logging.Logger, output: io.StringIO
) -> None:
    write_line(lone, logging.INFO, MESSAGE, ARGUMENTS, request_fields())
    lone.handle(
        lone.makeRecord(lone.name, logging.INFO, "", 0, MESSAGE, ARGUMENTS, None, None, {
            "event": "http.request", **request_fields()
        })
    )  # fmt: skip

    direct, recorded = lines(output)
    assert list(direct) == list(recorded)
    assert {**direct, "time": None} == {**recorded, "time": None}
    assert direct["message"] == "POST /token 200 in 1.5 ms"


def test_another_handler_gets_the_masked_record_and_the_line_is_written_once(
    output: io.StringIO,
) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("oidc_link.tests.direct.shared")
    collector = Collect()
    logging.getLogger().addHandler(collector)
    try:
        fields = {**request_fields(), "note": "for jenny@example.com"}
        write_line(logger, logging.INFO, "Hi %s", ("jenny@example.com",), fields)
    finally:
        logging.getLogger().removeHandler(collector)

    (line,) = lines(output)
    assert line["message"] == "Hi j***@example.com"
    assert line["note"] == "for j***@example.com"
    (record,) = seen
    assert record.getMessage() == "Hi j***@example.com"
    assert record.note == "for j***@example.com"  # type: ignore[attr-defined]
    assert "jenny@" not in output.getvalue()


def test_secrets_in_the_fields_and_arguments_of_a_line_without_a_record_are_masked(
    lone: logging.Logger, output: io.StringIO
) -> None:
    kid = "Kid" + "k1" * 20  # 43 characters: looks like an opaque secret, but is public
    fields = {"request_id": "req_abc", "kid": kid, "detail": {"seen": ["Bearer abc123"]}}
    write_line(lone, logging.INFO, "callback %s", ("/cb?code=abc123",), fields)

    (line,) = lines(output)
    assert line["message"] == "callback /cb?[redacted]"
    assert line["detail"] == {"seen": ["Bearer [redacted]"]}
    assert line["kid"] == kid
    assert "abc123" not in output.getvalue()


def test_the_request_fields_lead_the_line_whatever_order_they_are_given_in(
    lone: logging.Logger, output: io.StringIO
) -> None:
    fields = {"event": "tokens.issued", "grant_type": "refresh_token", "client_id": "shop"}
    write_line(lone, logging.INFO, "Tokens issued (%s)", ("refresh_token",), fields)
    lone.info("Tokens issued (%s)", "refresh_token", extra=fields)

    direct, recorded = lines(output)
    assert list(direct)[4:] == list(recorded)[4:] == ["client_id", "event", "grant_type"]
    assert {**direct, "time": None} == {**recorded, "time": None}


def test_the_request_being_answered_names_a_line_that_carries_no_request_id(
    lone: logging.Logger, output: io.StringIO
) -> None:
    token = current_request_id.set("req_current")
    try:
        write_line(lone, logging.INFO, "a", (), {"request_id": None, "event": "x"})
        write_line(lone, logging.INFO, "b", (), {"event": "y"})
    finally:
        current_request_id.reset(token)

    first, second = lines(output)
    assert first["request_id"] == second["request_id"] == "req_current"
    assert list(first)[4:] == list(second)[4:] == ["request_id", "event"]


def test_arguments_that_do_not_fit_the_message_still_give_a_line(
    lone: logging.Logger, output: io.StringIO
) -> None:
    write_line(lone, logging.INFO, "count %d", ("many",), {"event": "x"})

    (line,) = lines(output)
    assert line["message"].startswith("count %d")
    assert line["event"] == "x"


def test_below_the_loggers_level_no_line_is_written(
    lone: logging.Logger, output: io.StringIO
) -> None:
    lone.setLevel(logging.WARNING)
    try:
        write_line(lone, logging.INFO, "quiet", (), {"event": "x"})
        write_line(lone, logging.ERROR, "loud", (), {"event": "y"})
    finally:
        lone.setLevel(logging.NOTSET)

    assert [line["message"] for line in lines(output)] == ["loud"]


def test_with_the_text_format_the_line_is_the_text_formatters() -> None:
    stream = io.StringIO()
    configure_logging("text", "INFO", stream=stream)

    write_line(logging.getLogger("oidc_link.tests.direct"), logging.INFO, "hello %s", ("x",), {
        "event": "x"
    })  # fmt: skip

    assert stream.getvalue().rstrip().endswith("INFO oidc_link.tests.direct: hello x event=x")


def write_a_few_lines(stream: io.TextIOBase) -> None:
    """A request line and an event line without records, and a record's line."""
    configure_logging("json", "INFO", stream=stream)  # type: ignore[arg-type]
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, LineHandler))
    logger = logging.getLogger("oidc_link.tests.direct")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        write_line(logger, logging.INFO, MESSAGE, ARGUMENTS, request_fields())
        event = {"event": "sign_in.completed", "client_id": "shop", "email": "j***@example.com"}
        write_line(logger, logging.INFO, "Sign-in completed", (), event)
        logger.warning("Link said café ✓ for %s", "jenny@example.com", extra={"event": "x"})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def without_time(text: str) -> list[dict]:
    return [{**json.loads(line), "time": None} for line in text.splitlines()]


def test_lines_to_a_file_are_the_lines_a_text_stream_gets_each_written_whole_after_earlier_text(
    tmp_path: Path,
) -> None:
    text = io.StringIO()
    write_a_few_lines(text)
    path = tmp_path / "oidc-link.log"
    with open(path, "w", encoding="utf-8") as file:
        file.write("written before the log was configured\n")  # still in the file's buffer
        write_a_few_lines(file)
        handler = next(h for h in logging.getLogger().handlers if isinstance(h, LineHandler))
        assert handler._descriptor == file.fileno()  # the lines went to the descriptor
    first, rest = path.read_text(encoding="utf-8").split("\n", 1)
    assert first == "written before the log was configured"
    assert rest.endswith("\n") and "\n\n" not in rest
    assert without_time(rest) == without_time(text.getvalue())
    assert "jenny" not in rest and "café ✓" in rest


def test_a_stream_set_later_without_a_descriptor_gets_its_lines_as_text(
    tmp_path: Path,
) -> None:
    path = tmp_path / "oidc-link.log"
    with open(path, "w", encoding="utf-8") as file:
        handler = configure_logging("json", "INFO", stream=file)
        later = io.StringIO()
        handler.setStream(later)  # type: ignore[attr-defined]
        logging.getLogger("oidc_link.tests.direct").warning("to the new stream")
    assert path.read_text() == ""
    assert [line["message"] for line in lines(later)] == ["to the new stream"]


@pytest.fixture
def lone_requests(output: io.StringIO) -> Iterator[logging.Logger]:
    """The request log's logger, made to reach our handler and no other."""
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, LineHandler))
    logger = logging.getLogger(REQUEST_LOGGER)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    logger.propagate = True


@contextmanager
def alone(logger: logging.Logger) -> Iterator[None]:
    """Only our handler on ``logger``, as in a server: pytest also hangs its capture on a
    logger that does not propagate, once the test has begun. A plain request line then
    goes the checked way."""
    kept = logger.handlers
    logger.handlers = [h for h in kept if isinstance(h, LineHandler)]
    try:
        yield
    finally:
        logger.handlers = kept


def a_request_line(plain_parts: PlainParts | None, **parts: object) -> None:
    line = {
        "request_id": "req_3qX32WykesFL-WVE",
        "client_id": "shop",
        "route": "/signin/<flow_id>/code",
        "method": "POST",
        "status": 302,
        **parts,
    }
    client_id = line["client_id"]
    write_request_line(
        line["request_id"],  # type: ignore[arg-type]
        lambda: client_id,  # type: ignore[return-value]
        line["route"],  # type: ignore[arg-type]
        line["method"],  # type: ignore[arg-type]
        line["status"],  # type: ignore[arg-type]
        None,
        plain_parts,
    )


@pytest.mark.parametrize(
    "parts",
    [
        {},
        {"client_id": None, "route": None, "method": "GET", "status": 404},
        {"status": 503},
    ],
)
def test_a_plain_request_line_written_the_checked_way_is_the_line_the_mask_would_give(
    lone_requests: logging.Logger, output: io.StringIO, parts: dict[str, object]
) -> None:
    with alone(lone_requests):
        a_request_line(PlainParts(["shop"]), **parts)
        a_request_line(None, **parts)

    checked, masked = lines(output)
    assert list(checked) == list(masked)
    assert {**checked, "time": None} == {**masked, "time": None}


def test_a_line_checked_by_its_caller_goes_the_ordinary_way_when_another_handler_wants_it(
    lone_requests: logging.Logger, output: io.StringIO
) -> None:
    fields = {**request_fields(), "route": "/signin/<flow_id>"}
    with alone(lone_requests):
        assert write_checked_line(lone_requests, logging.INFO, "GET / 200 in 1.5 ms", fields)
    # pytest's capture handlers are on the logger again.
    assert not write_checked_line(lone_requests, logging.INFO, "GET / 200", fields)
    assert len(lines(output)) == 1


@pytest.mark.parametrize(
    ("parts", "field", "masked"),
    [
        ({"method": "eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"}, "method", "[jwt]"),
        ({"route": "/cb?code=abc123"}, "route", "/cb?[redacted]"),
        ({"request_id": "req_x Bearer abc123"}, "request_id", "req_x Bearer [redacted]"),
        ({"client_id": "https://user:pw@shop.example"}, "client_id", None),
    ],
)
def test_a_request_line_with_a_sign_of_a_secret_in_any_part_is_masked(
    lone_requests: logging.Logger,
    output: io.StringIO,
    parts: dict[str, object],
    field: str,
    masked: str | None,
) -> None:
    # The client id is configured but looks like a URL with a password: PlainParts leaves
    # it to the mask, which hides the password.
    client = "https://user:pw@shop.example"
    with alone(lone_requests):
        a_request_line(PlainParts(["shop", client]), **parts)

    (line,) = lines(output)
    if masked is not None:
        assert line[field] == masked
    assert "abc123" not in output.getvalue() and ":pw@" not in output.getvalue()
