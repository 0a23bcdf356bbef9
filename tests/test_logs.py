"""The log output (oidc_link/logs/): JSON lines, the text format, and the secret mask that
every record passes through, whatever part of it holds the secret."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from oidc_link.cli import default_log_format, main
from oidc_link.config import settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.logs import (
    JsonFormatter,
    SecretMask,
    TextFormatter,
    configure_logging,
    mask,
    mask_value,
    masked_email,
)
from oidc_link.logs.mask import _RULES, may_hold_secret
from tests.conftest import SHOP_SECRET, provider_config

log = logging.getLogger("oidc_link.tests.logs")

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhY2N0XzEyMyJ9."
    "c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1ieXRlcw"
)
OPAQUE = "Qm9xZ2V0LXRva2VuLXZhbHVlLTAxMjM0NTY3ODk"  # 38 base64url characters, like new_secret()


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """A JSON handler installed as the CLI would, at DEBUG (conftest.py removes it after)."""
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    yield stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_email_keeps_its_first_letter_and_its_domain() -> None:
    assert mask("lookup for jenny.rosen+shop@example.co.uk failed") == (
        "lookup for j***@example.co.uk failed"
    )
    assert mask("email=jenny%40example.com") == "email=j***%40example.com"
    assert masked_email("Jenny@Example.com") == "J***@Example.com"


def test_query_strings_are_scrubbed_but_prose_with_a_question_mark_is_kept() -> None:
    assert mask('"GET /authorize?client_id=shop&login_hint=a@b.io HTTP/1.1" 302') == (
        '"GET /authorize?[redacted] HTTP/1.1" 302'
    )
    assert mask("http://127.0.0.1:9/api/lookup-email?email=x&STRIPE_PUBLIC_KEY=pk") == (
        "http://127.0.0.1:9/api/lookup-email?[redacted]"
    )
    assert mask("Is Redis up? Retrying") == "Is Redis up? Retrying"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"id_token_hint {JWT} refused", "id_token_hint [jwt] refused"),
        ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "key sk_live_[redacted]"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"),
        ("Authorization: Basic c2hvcDpzZWNyZXQ=", "Authorization: Basic [redacted]"),
        ("client_secret=s3cr3t&grant_type=x", "client_secret=[redacted]&grant_type=x"),
        ("code=123456 state=abc", "code=[redacted] state=abc"),
        (
            '{"access_token": "at-1", "token_type": "Bearer"}',
            '{"access_token": "[redacted]", "token_type": "Bearer"}',
        ),
        ("{'refresh_token': 'rt-1'}", "{'refresh_token': '[redacted]'}"),
        ("redis://:hunter2@redis.internal:6379/0", "redis://:[redacted]@redis.internal:6379/0"),
        (f"session {OPAQUE} ended", "session [redacted] ended"),
    ],
)
def test_each_shape_of_secret_is_replaced(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_ordinary_words_ids_and_numbers_are_left_alone() -> None:
    text = (
        "token_endpoint_auth_methods_supported: status code: 400 for req_3kTqPz8aBcDeFgHi "
        "acct_Zx81yQ in 12.5 ms at 2026-12-03T00:10:00"
    )
    assert mask(text) == text


def test_strings_nested_in_extras_are_masked_at_any_depth() -> None:
    value = {
        "who": ["jenny@example.com", ("sam@example.org", 3)],
        "jenny@example.com": {"token": f"Bearer {OPAQUE}", "ok": True, "n": None},
    }

    assert mask_value(value) == {
        "who": ["j***@example.com", ["s***@example.org", 3]],
        "j***@example.com": {"token": "Bearer [redacted]", "ok": True, "n": None},
    }


def test_an_email_in_the_message_its_arguments_and_its_extras_never_reaches_the_output(
    output: io.StringIO,
) -> None:
    log.info(
        "Lookup for jenny@example.com: %s (%r)",
        "sam@example.org",
        {"email": "kim@example.net"},
        extra={"account": {"emails": ["lee@example.io"]}, "note": "from ann@example.com"},
    )

    text = output.getvalue()
    for email in ("jenny@", "sam@", "kim@", "lee@", "ann@"):
        assert email not in text
    (line,) = lines(output)
    assert (
        line["message"]
        == "Lookup for j***@example.com: s***@example.org ({'email': 'k***@example.net'})"
    )
    assert line["account"] == {"emails": ["l***@example.io"]}
    assert line["note"] == "from a***@example.com"


def test_a_traceback_is_masked_too(output: io.StringIO) -> None:
    try:
        raise ValueError(f"could not use refresh token {OPAQUE} for jenny@example.com")
    except ValueError:
        log.exception("Refresh failed")

    (line,) = lines(output)
    assert OPAQUE not in output.getvalue()
    assert "jenny@example.com" not in output.getvalue()
    assert (
        "ValueError: could not use refresh token [redacted] for j***@example.com"
        in (line["exception"])
    )


def test_a_key_id_given_as_the_kid_field_stays_readable(output: io.StringIO) -> None:
    kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

    log.warning("Created RS256 signing key %s", kid, extra={"kid": kid})
    log.warning("Something about %s", kid)

    first, second = lines(output)
    assert first["message"] == f"Created RS256 signing key {kid}"
    assert first["kid"] == kid
    assert second["message"] == "Something about [redacted]"


def test_json_lines_carry_time_level_logger_message_and_the_request_fields_first(
    output: io.StringIO,
) -> None:
    log.info(
        "GET /token 200",
        extra={
            "duration_ms": 3.2,
            "status": 200,
            "event": "http.request",
            "request_id": "req_abc",
            "route": "/token",
            "method": "POST",
            "client_id": "shop",
        },
    )

    (line,) = lines(output)
    assert list(line)[:10] == [
        "time",
        "level",
        "logger",
        "message",
        "request_id",
        "client_id",
        "route",
        "method",
        "status",
        "duration_ms",
    ]
    assert line["level"] == "info"
    assert line["logger"] == "oidc_link.tests.logs"
    assert line["time"].endswith("+00:00")
    assert line["event"] == "http.request"


def test_an_extra_named_like_a_fixed_field_of_a_json_line_does_not_replace_it(
    output: io.StringIO,
) -> None:
    log.info("Hello", extra={"time": "then", "level": "loud", "logger": "me", "note": "kept"})

    (line,) = lines(output)
    assert line["time"] != "then"
    assert (line["level"], line["logger"], line["note"]) == ("info", log.name, "kept")


def test_the_json_formatter_writes_a_record_the_mask_never_saw_in_the_same_order() -> None:
    fields = {"note": "n", "status": 200, "event": "e", "route": "/r", "extra_count": 2}

    def record() -> logging.LogRecord:
        return log.makeRecord(
            log.name, logging.INFO, __file__, 1, "Hi %s", ("x",), None, None, fields
        )

    masked = record()
    SecretMask().filter(masked)
    alone = json.loads(JsonFormatter().format(record()))
    behind_the_mask = json.loads(JsonFormatter().format(masked))

    assert list(alone) == list(behind_the_mask) == [
        "time", "level", "logger", "message", "route", "status", "note", "event", "extra_count",
    ]  # fmt: skip
    assert {**alone, "time": None} == {**behind_the_mask, "time": None}


def test_the_text_format_adds_the_fields_after_the_message() -> None:
    record = logging.LogRecord("oidc_link.x", logging.INFO, __file__, 1, "Hi %s", ("a@b.io",), None)
    record.client_id = "shop"
    SecretMask().filter(record)

    assert TextFormatter().format(record).endswith("INFO oidc_link.x: Hi a***@b.io client_id=shop")


def test_the_development_servers_access_line_is_left_out_of_json_and_masked_in_text() -> None:
    def access_line(format_name: str) -> str:
        stream = io.StringIO()
        configure_logging(format_name, "INFO", stream=stream)
        logging.getLogger("werkzeug").info(
            '127.0.0.1 - - [now] "%s" %s %s', "GET /cb?code=abc HTTP/1.1", "302", "-"
        )
        return stream.getvalue()

    assert access_line("json") == ""
    assert '"GET /cb?[redacted] HTTP/1.1" 302 -' in access_line("text")


def test_an_access_line_left_out_of_json_is_still_masked_for_the_handlers_after_ours(
    output: io.StringIO,
) -> None:
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    collector = Collect()
    root.addHandler(collector)
    try:
        logging.getLogger("werkzeug").info(
            '127.0.0.1 - - [now] "%s" %s %s', "GET /logout?id_token_hint=x HTTP/1.1", "303", "-"
        )
    finally:
        root.removeHandler(collector)

    assert output.getvalue() == ""
    assert seen == ['127.0.0.1 - - [now] "GET /logout?[redacted] HTTP/1.1" 303 -']


def test_configuring_twice_keeps_one_handler_placed_before_the_others(
    output: io.StringIO,
) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root = logging.getLogger()
    collector = Collect()
    root.addHandler(collector)
    try:
        configure_logging("json", "DEBUG", stream=output)  # as each worker of a server would
        log.info("for %s", "jenny@example.com")
    finally:
        root.removeHandler(collector)

    ours = [h for h in root.handlers if getattr(h, "_oidc_link", False)]
    assert len(ours) == 1 and root.handlers[0] is ours[0]
    # The handler after ours received the record already masked.
    assert seen[-1].getMessage() == "for j***@example.com"


def test_a_line_logged_while_answering_a_request_carries_its_request_id(
    app: Flask, output: io.StringIO
) -> None:
    @app.get("/_log_probe")
    def probe() -> str:
        log.info("inside the request")
        return "ok"

    response = app.test_client().get("/_log_probe")

    request_id = response.headers["Request-Id"]
    inside, request_line = (
        line for line in lines(output) if line["logger"] in (log.name, "oidc_link.requests")
    )
    assert inside["request_id"] == request_id
    assert request_line["request_id"] == request_id
    assert request_line["route"] == "/_log_probe"
    assert request_line["status"] == 200


def test_a_request_line_names_only_a_configured_client(app: Flask, output: io.StringIO) -> None:
    client = app.test_client()
    client.get("/authorize", query_string={"client_id": "shop"})
    client.get("/authorize", query_string={"client_id": "jenny@example.com"})
    client.post("/token", data={"grant_type": "x"}, auth=("blog", "wrong"))

    requests = [line for line in lines(output) if line.get("event") == "http.request"]
    assert [line["client_id"] for line in requests] == ["shop", None, "blog"]
    assert [line["route"] for line in requests] == ["/authorize", "/authorize", "/token"]
    assert "jenny" not in output.getvalue()


def test_a_request_line_finds_the_client_however_the_request_spells_where_it_is_named(
    app: Flask, output: io.StringIO
) -> None:
    client = app.test_client()
    client.get("/authorize?%63lient%5Fid=shop&state=s")  # the key written with %-escapes
    client.get("/authorize?state=s")  # a query naming no client
    client.post(
        "/token",
        data="grant_type=x&client_id=blog",
        headers={"Content-Type": "Application/X-WWW-Form-URLEncoded ; charset=utf-8"},
    )
    client.post("/token", data={"grant_type": "x"}, headers={"Authorization": "Basic %%%"})

    requests = [line for line in lines(output) if line.get("event") == "http.request"]
    assert [line["client_id"] for line in requests] == ["shop", None, "blog", None]
    assert [line["status"] for line in requests][3] in (400, 401)


def test_the_log_settings_come_from_the_file_and_the_environment_wins() -> None:
    config = provider_config() | {
        "log_format": "text",
        "log_level": "debug",
        "log_probe_requests": "Line",
    }
    from_file = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    from_env = settings_from_mapping(
        config,
        {
            "SHOP_SECRET": SHOP_SECRET,
            "OIDC_LINK_LOG_FORMAT": "json",
            "OIDC_LINK_LOG_LEVEL": "WARNING",
            "OIDC_LINK_LOG_PROBE_REQUESTS": "counter",
        },
        "test",
    )
    default = settings_from_mapping(provider_config(), {"SHOP_SECRET": SHOP_SECRET}, "test")

    assert (from_file.logs.format, from_file.logs.level) == ("text", "DEBUG")
    assert (from_file.logs.probe_requests, from_file.logs.probe_lines) == ("line", True)
    assert (from_env.logs.format, from_env.logs.level) == ("json", "WARNING")
    assert (from_env.logs.probe_requests, from_env.logs.probe_lines) == ("counter", False)
    assert (default.logs.format_or("json"), default.logs.level) == ("json", "INFO")
    assert (default.logs.probe_requests, default.logs.probe_lines) == ("counter", False)


def test_an_unknown_log_format_level_or_probe_requests_mode_is_a_configuration_problem() -> None:
    config = provider_config() | {
        "log_format": "xml",
        "log_level": "loud",
        "log_probe_requests": "none",
    }

    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")

    problems = {problem.field: problem.message for problem in raised.value.problems}
    assert {"log_format", "log_level", "log_probe_requests"} <= set(problems)
    assert problems["log_probe_requests"] == "must be one of counter, line"


def test_serve_logs_json_and_the_operators_commands_log_text() -> None:
    import argparse

    assert default_log_format(argparse.Namespace(command="serve")) == "json"
    assert default_log_format(argparse.Namespace(command="serve", dev=True)) == "text"
    assert default_log_format(argparse.Namespace(command="demo")) == "text"
    assert default_log_format(argparse.Namespace(command="keys")) == "text"


def test_the_environment_chooses_json_for_any_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("OIDC_LINK_LOG_FORMAT", "json")
    main(["keys", "generate-kek"])
    log.warning("hello from %s", "jenny@example.com")

    (line,) = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    assert line["message"] == "hello from j***@example.com"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("BEARER abc.def-ghi", "BEARER [redacted]"),
        ("basic c2hvcDpzZWNyZXQ", "basic [redacted]"),
        ("sk_test_abc", "sk_test_[redacted]"),
        ("eyJa.b.c", "[jwt]"),
        ("a@b.io", "a***@b.io"),
        ("x%40example.com", "x***%40example.com"),
        ("/cb?x", "/cb?[redacted]"),
        ("code=1", "code=[redacted]"),
    ],
)
def test_a_short_secret_is_masked_even_without_any_other_sign_of_one(
    text: str, masked: str
) -> None:
    assert mask(text) == masked


def test_text_the_quick_check_passes_over_holds_nothing_any_rule_would_match() -> None:
    # The mask skips its rules for text with none of their marks (logs.may_hold_secret):
    # that must never skip a match. Random text from an alphabet of those marks says so.
    alphabet = "aZ9_-./ ?=:@%'\"eyJkbBsrlivtes" + "Qm9xZ2V0" * 2
    chance = random.Random(20261203)  # noqa: S311 - repeatable test input, no secret
    skipped = 0
    for _ in range(20_000):
        text = "".join(chance.choice(alphabet) for _ in range(chance.randint(1, 60)))
        if chance.random() < 0.2:
            text += "".join(chance.choice("AbCd0123_-") for _ in range(chance.randint(28, 40)))
        if not may_hold_secret(text):
            skipped += 1
            assert all(rule.pattern.search(text) is None for rule in _RULES), text
    assert skipped > 1000  # the check did let most plain text through


def every_rule(text: str) -> str:
    """What the mask gave before it skipped a rule without its mark: every rule, in order."""
    for rule in _RULES:
        text = rule.pattern.sub(rule.replacement, text)
    return text


def test_the_mask_skipping_rules_without_their_mark_masks_as_every_rule_would() -> None:
    alphabet = "aZ9_-./ ?=:@%'\"eyJkbBsrlivtes" + "Qm9xZ2V0" * 2 + "\u017f\u0131\u212a"
    pieces = ["Bearer ", "basic ", "eyJhbGci.eyJz.c2ln", "sk_live_", "http://u:", "%40", "code="]
    chance = random.Random(20261207)  # noqa: S311 - repeatable test input, no secret
    for _ in range(20_000):
        text = "".join(chance.choice(alphabet) for _ in range(chance.randint(1, 50)))
        if chance.random() < 0.5:
            text += chance.choice(pieces) + "".join(
                chance.choice(alphabet) for _ in range(chance.randint(0, 20))
            )
        if chance.random() < 0.2:
            text += "".join(chance.choice("AbCd0123_-") for _ in range(chance.randint(28, 40)))
        assert mask(text) == every_rule(text), text


# The replacements as re templates, as the rules had them before they became functions.
TEMPLATES = {
    "_api_key": r"\1_[redacted]",
    "_credentials": r"\1 [redacted]",
    "_url_password": r"\1:[redacted]@",
    "_named_secret": r"\g<name>\g<quote>[redacted]",
    "_email": r"\1***\2\3",
}


def test_each_rules_replacement_writes_what_its_template_wrote() -> None:
    alphabet = "aZ9_-./ ?=:@%'\"eyJkbBsrlivtes" + "Qm9xZ2V0" * 2 + "\u017f\u0131\u212a"
    pieces = [
        "Bearer ", "basic ", "sk_live_", "rk_test_", "http://u:", "%40", "code=", "'secret': ",
        "token = \"", "jenny.rosen@example.co.uk",
    ]  # fmt: skip
    rules = [rule for rule in _RULES if callable(rule.replacement)]
    assert {rule.replacement.__name__ for rule in rules} >= set(TEMPLATES)  # type: ignore[union-attr]
    chance = random.Random(20261207)  # noqa: S311 - repeatable test input, no secret
    replaced = 0
    for _ in range(20_000):
        text = "".join(chance.choice(alphabet) for _ in range(chance.randint(0, 30)))
        text += chance.choice(pieces) + "".join(
            chance.choice(alphabet) for _ in range(chance.randint(0, 30))
        )
        for rule in rules:
            template = TEMPLATES.get(rule.replacement.__name__)  # type: ignore[union-attr]
            if template is not None:
                written = rule.pattern.sub(rule.replacement, text)
                assert written == rule.pattern.sub(template, text), text
                replaced += written != text
    assert replaced > 1000  # the texts did hold what the rules replace


@pytest.mark.parametrize("scheme", ["Ba\u017fic", "BA\u017fIC", "Ba\u017f\u0131c", "bas\u0130c"])
def test_credentials_after_a_scheme_spelt_with_letters_the_rules_take_for_ascii_are_masked(
    scheme: str,
) -> None:
    # re's IGNORECASE takes a long s for s and a dotless or dotted i for i (its docs).
    assert mask(f"sent {scheme} dXNlcjpwYXNz") == f"sent {scheme} [redacted]"


def test_basic_credentials_not_in_ascii_give_the_token_endpoints_error_not_a_500(
    app: Flask, output: io.StringIO
) -> None:
    answer = app.test_client().post(
        "/token", data={"grant_type": "x"}, headers={"Authorization": "Basic \u00e9t\u00e9"}
    )

    assert answer.status_code in (400, 401)
    (line,) = [line for line in lines(output) if line.get("event") == "http.request"]
    assert line["client_id"] is None and line["status"] == answer.status_code


def test_json_time_is_written_as_datetime_would_write_it() -> None:
    formatter = JsonFormatter()
    chance = random.Random(7)  # noqa: S311 - repeatable test input, no secret
    moments = [chance.uniform(0, 4e9) for _ in range(5000)]
    # Fractions that round up to the next millisecond or second at the microsecond.
    moments += [1_800_000_000 + fraction for fraction in (0.9999995, 0.9995, 0.0005, 0.1234995)]
    for moment in moments:
        expected = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
        assert formatter.time_text(moment) == expected


def test_a_line_without_a_record_writes_its_time_from_nanoseconds_as_datetime_would() -> None:
    formatter = JsonFormatter()
    chance = random.Random(11)  # noqa: S311 - repeatable test input, no secret
    moments = [chance.randrange(0, 4 * 10**18) for _ in range(5000)]
    # Nanoseconds that round up to the next millisecond or second at the microsecond.
    moments += [1_800_000_000 * 10**9 + n for n in (999_999_500, 999_500_000, 499, 500, 0)]
    for moment in moments:
        second, nanosecond = divmod(moment, 10**9)
        exact = datetime.fromtimestamp(second, UTC) + timedelta(
            microseconds=(nanosecond + 500) // 1000
        )
        assert formatter.nanoseconds_text(moment) == exact.isoformat(timespec="milliseconds")
    before = formatter.time_text(time.time())
    assert before <= formatter.now_text() <= formatter.time_text(time.time() + 0.002)


def test_lines_logged_by_many_threads_at_once_are_each_whole(output: io.StringIO) -> None:
    def write_lines(number: int) -> None:
        for line in range(200):
            log.info("thread %d line %d", number, line, extra={"note": "x" * 50})

    threads = [threading.Thread(target=write_lines, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    written = lines(output)  # every line parses as JSON
    assert len(written) == 8 * 200
    assert {line["message"] for line in written} == {
        f"thread {n} line {i}" for n in range(8) for i in range(200)
    }


def test_below_the_log_level_requests_write_no_line_but_a_server_error_does(
    app: Flask,
) -> None:
    stream = io.StringIO()
    configure_logging("json", "WARNING", stream=stream)

    @app.get("/_failing_probe")
    def failing() -> str:
        raise RuntimeError("probe")

    client = app.test_client()
    client.post("/token", data={"grant_type": "x", "client_id": "shop"})
    client.get("/_failing_probe")

    requests = [line for line in lines(stream) if line.get("event") == "http.request"]
    assert [(line["route"], line["status"], line["level"]) for line in requests] == [
        ("/_failing_probe", 500, "error")
    ]
