"""A request's lines held until it is answered and written together (oidc_link/logs/held.py):
the same lines, in the order logged, in one write; nothing held outside a request or for
another thread."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from flask import Flask

from oidc_link.logs import configure_logging
from oidc_link.logs.direct import write_line
from oidc_link.logs.held import hold_lines, write_held


class CountedWrites(io.StringIO):
    """A text stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[CountedWrites]:
    counted = CountedWrites()
    configure_logging("json", "INFO", stream=counted)
    yield counted


def events(text: str) -> list[str]:
    return [json.loads(line).get("event") for line in text.splitlines()]


log = logging.getLogger("oidc_link.tests.held")


def request_line() -> None:
    write_line(log, logging.INFO, "%s %s %d in %s ms", ("POST", "/token", 200, 1.5), {
        "request_id": "req_a", "client_id": "shop", "route": "/token", "method": "POST",
        "status": 200, "duration_ms": 1.5, "event": "http.request"})  # fmt: skip


def test_a_requests_lines_wait_for_its_end_and_go_out_in_one_write_in_the_order_logged(
    stream: CountedWrites,
) -> None:
    token = hold_lines()
    log.info("Tokens issued", extra={"event": "tokens.issued", "client_id": "shop"})
    write_line(log, logging.INFO, "SMS code sent", (), {"event": "sms.sent"})
    request_line()
    assert stream.writes == []
    write_held()
    assert len(stream.writes) == 1
    assert events(stream.writes[0]) == ["tokens.issued", "sms.sent", "http.request"]
    log.warning("after the request line", extra={"event": "late"})  # written at once
    assert events(stream.writes[1]) == ["late"]
    write_held(token)
    assert len(stream.writes) == 2


def test_lines_still_held_when_the_request_is_torn_down_are_written_then(
    stream: CountedWrites,
) -> None:
    token = hold_lines()
    log.error("Unhandled error", extra={"event": "boom"})
    assert stream.writes == []
    write_held(token)
    assert [events(text) for text in stream.writes] == [["boom"]]
    log.info("outside any request", extra={"event": "free"})
    assert [events(text) for text in stream.writes] == [["boom"], ["free"]]


def test_another_threads_line_is_written_at_once_while_a_request_holds_its_own(
    stream: CountedWrites,
) -> None:
    token = hold_lines()
    log.info("held", extra={"event": "mine"})
    other = threading.Thread(target=lambda: log.info("theirs", extra={"event": "theirs"}))
    other.start()
    other.join()
    assert [events(text) for text in stream.writes] == [["theirs"]]
    write_held(token)
    assert [events(text) for text in stream.writes] == [["theirs"], ["mine"]]


def test_without_holding_each_line_is_its_own_write(stream: CountedWrites) -> None:
    log.info("one", extra={"event": "a"})
    request_line()
    assert [events(text) for text in stream.writes] == [["a"], ["http.request"]]


def test_the_app_writes_a_requests_lines_with_its_request_line_in_one_write(
    app: Flask, stream: CountedWrites
) -> None:
    @app.get("/_held_probe")
    def probe() -> str:
        write_line(log, logging.INFO, "SMS code sent", (), {"event": "sms.sent"})
        log.warning("Link answered slowly", extra={"event": "link.slow"})
        return "ok"

    @app.get("/_failing_held_probe")
    def failing() -> str:
        log.info("before the failure", extra={"event": "step"})
        raise RuntimeError("probe")

    client = app.test_client()
    request_id = client.get("/_held_probe").headers["Request-Id"]
    client.get("/_failing_held_probe")
    log.info("between requests", extra={"event": "free"})

    first, second, third = stream.writes
    assert events(first) == ["sms.sent", "link.slow", "http.request"]
    assert {json.loads(line)["request_id"] for line in first.splitlines()} == {request_id}
    assert events(second)[0] == "step" and events(second)[-1] == "http.request"
    assert json.loads(second.splitlines()[-1])["status"] == 500
    assert events(third) == ["free"]
