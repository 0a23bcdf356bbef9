"""A step's event on its request's line (issue 16 item 5): ``sms.sent``, ``sign_in.completed``
and ``tokens.issued`` are written as one line with the request's fields, not as two lines
(logs/direct.py ``write_event``, web/request_log.py). An event no request line takes keeps a
line of its own; nothing is lost and the mask applies as before."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from oidc_link.logs import REQUEST_FIELDS, configure_logging
from oidc_link.logs.direct import write_event
from oidc_link.logs.held import hold_lines, write_held
from oidc_link.web.request_log import write_request_line
from tests.conftest import JENNY
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code

log = logging.getLogger("oidc_link.tests.step_events")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    yield stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def sms_sent(n: int = 1) -> None:
    write_event(log, logging.INFO, "SMS code sent", (), {"event": "sms.sent", "sms_in_flow": n})


def test_each_sign_in_step_and_the_token_request_write_one_line_the_event_on_the_requests_line(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], output: io.StringIO
) -> None:
    request = shop.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email=JENNY)
    callback = browser.submit("/code", code=announced_code(console)).headers["Location"]
    shop.exchange(callback, request)

    written = [line for line in lines(output) if "request_id" in line]
    # One line per request: no request is named by two lines.
    assert len({line["request_id"] for line in written}) == len(written)
    requests = [line for line in written if "status" in line]
    assert requests == written
    by_route = {(line["method"], line["route"]): line for line in requests}
    email = by_route[("POST", "/signin/<flow_id>/email")]
    code = by_route[("POST", "/signin/<flow_id>/code")]
    token = by_route[("POST", "/token")]
    assert by_route[("GET", "/authorize")]["event"] == "http.request"
    assert {
        "logger": "oidc_link.interaction",
        "message": "SMS code sent",
        "client_id": "shop",
        "status": 303,
        "event": "sms.sent",
        "sms_in_flow": 1,
    }.items() <= email.items()
    assert {
        "logger": "oidc_link.interaction",
        "message": "Sign-in completed",
        "client_id": "shop",
        "event": "sign_in.completed",
        "email": "j***@example.com",
    }.items() <= code.items()
    assert {
        "logger": "oidc_link.oauth",
        "message": "Tokens issued (authorization_code)",
        "client_id": "shop",
        "status": 200,
        "event": "tokens.issued",
        "grant_type": "authorization_code",
    }.items() <= token.items()
    assert "with_refresh_token" in token
    for line in (email, code, token):
        assert list(line)[:10] == ["time", "level", "logger", "message", *REQUEST_FIELDS]
        assert line["duration_ms"] >= 0 and line["request_id"].startswith("req_")
    assert "jenny@" not in output.getvalue()


def test_an_event_outside_a_request_and_a_requests_second_event_get_lines_of_their_own(
    output: io.StringIO,
) -> None:
    sms_sent(1)  # no request being answered: written at once
    assert [line["event"] for line in lines(output)] == ["sms.sent"]

    token = hold_lines()
    sms_sent(2)
    sms_sent(3)  # the request line carries one event: this one is a line of its own
    write_request_line("req_a", lambda: "shop", "/signin/<flow_id>/email", "POST", 303, None)
    write_held(token)

    first, second, request = lines(output)
    assert (second["event"], second["sms_in_flow"], "status" in second) == ("sms.sent", 3, False)
    assert (request["event"], request["sms_in_flow"], request["status"]) == ("sms.sent", 2, 303)
    assert request["request_id"] == "req_a" and request["client_id"] == "shop"
    assert (first["sms_in_flow"], "status" in first) == (1, False)


def test_an_event_whose_request_writes_no_line_is_written_on_its_own(
    app: Flask, output: io.StringIO
) -> None:
    @app.get("/_event_probe")
    def probe() -> str:
        sms_sent()
        return "ok"

    requests_log = logging.getLogger("oidc_link.requests")
    requests_log.setLevel(logging.WARNING)  # no request lines
    try:
        request_id = app.test_client().get("/_event_probe").headers["Request-Id"]
    finally:
        requests_log.setLevel(logging.NOTSET)

    (line,) = lines(output)
    assert (line["event"], line["request_id"], "status" in line) == ("sms.sent", request_id, False)


def test_an_event_of_a_request_that_fails_is_on_its_error_line(
    app: Flask, output: io.StringIO
) -> None:
    @app.get("/_failing_event_probe")
    def failing() -> str:
        sms_sent()
        raise RuntimeError("probe")

    app.test_client().get("/_failing_event_probe")

    request = [line for line in lines(output) if "status" in line]
    assert [(line["event"], line["status"], line["level"]) for line in request] == [
        ("sms.sent", 500, "error")
    ]


def test_another_handler_gets_one_record_with_the_event_and_the_requests_fields(
    app: Flask, output: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/_event_probe")
    def probe() -> str:
        sms_sent()
        return "ok"

    with caplog.at_level(logging.INFO):
        app.test_client().get("/_event_probe")

    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "sms.sent"]
    assert (record.name, record.getMessage(), record.status) == (log.name, "SMS code sent", 200)
    assert record.route == "/_event_probe"
    (line,) = lines(output)
    assert (line["event"], line["route"], line["sms_in_flow"]) == ("sms.sent", "/_event_probe", 1)


def test_a_secret_in_an_event_on_its_requests_line_is_masked_as_on_its_own_line(
    app: Flask, output: io.StringIO
) -> None:
    @app.get("/_secret_event_probe")
    def probe() -> str:
        write_event(
            log,
            logging.INFO,
            "Sent to %s",
            ("jenny@example.com",),
            {"event": "sms.sent", "note": "code=123456", "kid": "kid_public"},
        )
        return "ok"

    app.test_client().get("/_secret_event_probe")
    on_the_request_line = lines(output)[-1]
    token = hold_lines()  # the same event with no request line to take it
    write_event(
        log,
        logging.INFO,
        "Sent to %s",
        ("jenny@example.com",),
        {"event": "sms.sent", "note": "code=123456", "kid": "kid_public"},
    )
    write_held(token)
    alone = lines(output)[-1]

    assert "jenny@" not in output.getvalue() and "123456" not in output.getvalue()
    assert on_the_request_line["status"] == 200 and "status" not in alone
    for line in (on_the_request_line, alone):
        assert line["message"] == "Sent to j***@example.com"
        assert line["note"] == "code=[redacted]" and line["kid"] == "kid_public"


def test_an_events_message_without_arguments_is_written_as_it_is_as_logging_would(
    app: Flask, output: io.StringIO
) -> None:
    @app.get("/_percent_event_probe")
    def probe() -> str:
        write_event(log, logging.INFO, "100% of 50%% sent", (), {"event": "sms.sent"})
        return "ok"

    app.test_client().get("/_percent_event_probe")

    (line,) = lines(output)
    assert (line["message"], line["status"]) == ("100% of 50%% sent", 200)
    assert line["message"] == logging.makeLogRecord({"msg": "100% of 50%% sent"}).getMessage()
