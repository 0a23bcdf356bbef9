"""The live Link client over real HTTP, against the fake Link server in both dialects:
retries only where safe, timeouts, every failure mapped to one LinkError kind, quiet logs."""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oidc_link.clock import FixedClock
from oidc_link.config import LinkSettings
from oidc_link.link import LinkError, LinkErrorKind, LinkUser
from oidc_link.link.http import LiveLinkClient
from oidc_link.link.switch import make_link_client
from tests.fake_link_server import FakeLinkServer
from tests.sandbox_console import wrong_code_for

JENNY = "jenny@example.com"

PATHS = {
    "loginwithlink": {
        "lookup": "/api/lookup-email",
        "start_verification": "/api/start_verification",
        "authenticate": "/api/authenticate",
    },
    "stripe": {
        "lookup": "/v1/consumers/sessions/lookup",
        "start_verification": "/v1/consumers/sessions/start_verification",
        "authenticate": "/v1/consumers/sessions/confirm_verification",
    },
}
OPERATIONS = ("lookup", "start_verification", "authenticate")


@pytest.fixture(params=["loginwithlink", "stripe"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sleeps() -> list[float]:
    """The backoff delays the client asked for; nothing really sleeps."""
    return []


@pytest.fixture
def make_client(
    fake_link: FakeLinkServer, dialect: str, sleeps: list[float]
) -> Iterator[Callable[..., LiveLinkClient]]:
    """Build clients for the fake server in this test's dialect; settings may be overridden."""
    made: list[LiveLinkClient] = []

    def build(**overrides: Any) -> LiveLinkClient:
        made.append(
            LiveLinkClient(fake_link.settings_for(dialect, **overrides), sleep=sleeps.append)
        )
        return made[-1]

    yield build
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., LiveLinkClient]) -> LiveLinkClient:
    return make_client()


def count(fake: FakeLinkServer, dialect: str, operation: str) -> int:
    return fake.count(PATHS[dialect][operation])


def start(client: LiveLinkClient, email: str = JENNY) -> str:
    found = client.lookup(email)
    assert found.client_secret is not None
    return client.start_verification(email, found.client_secret).client_secret


def call(client: LiveLinkClient, operation: str) -> object:
    """Run one operation with placeholder arguments (for answers the fake is told to give)."""
    if operation == "lookup":
        return client.lookup(JENNY)
    if operation == "start_verification":
        return client.start_verification(JENNY, "cs_placeholder")
    return client.authenticate(JENNY, "cs_placeholder", "123456")


def refused(action: Callable[[], object]) -> LinkErrorKind:
    with pytest.raises(LinkError) as caught:
        action()
    return caught.value.kind


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Retries: only where repeating cannot do harm.


def test_a_lookup_is_retried_after_server_errors_and_then_succeeds(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, sleeps: list[float]
) -> None:
    fake_link.fail_next(1, status=500)
    fake_link.fail_next(1, status=503)

    assert client.lookup(JENNY).exists

    assert count(fake_link, dialect, "lookup") == 3
    assert sleeps == [0.2, 0.4]


def test_a_lookup_is_retried_after_a_connection_reset_and_then_succeeds(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, sleeps: list[float]
) -> None:
    fake_link.reset_next(1)

    assert client.lookup(JENNY).exists

    assert count(fake_link, dialect, "lookup") == 2
    assert sleeps == [0.2]


def test_a_lookup_is_unavailable_once_retries_are_exhausted(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, sleeps: list[float]
) -> None:
    fake_link.fail_next(3)

    assert refused(lambda: client.lookup(JENNY)) is LinkErrorKind.UNAVAILABLE
    assert count(fake_link, dialect, "lookup") == 3  # one try and max_retries=2 more
    assert sleeps == [0.2, 0.4]


def test_max_retries_of_zero_means_a_single_try(
    make_client: Callable[..., LiveLinkClient], fake_link: FakeLinkServer, dialect: str
) -> None:
    client = make_client(max_retries=0)
    fake_link.fail_next(1)

    assert refused(lambda: client.lookup(JENNY)) is LinkErrorKind.UNAVAILABLE
    assert count(fake_link, dialect, "lookup") == 1


def test_a_code_submission_is_never_retried_after_a_server_error(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, sleeps: list[float]
) -> None:
    secret = start(client)
    fake_link.fail_next(1, status=503)

    kind = refused(lambda: client.authenticate(JENNY, secret, fake_link.last_code(JENNY)))

    assert kind is LinkErrorKind.UNAVAILABLE
    assert count(fake_link, dialect, "authenticate") == 1
    assert sleeps == []


def test_a_code_submission_is_never_retried_after_a_connection_reset(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, sleeps: list[float]
) -> None:
    secret = start(client)
    fake_link.reset_next(1)

    kind = refused(lambda: client.authenticate(JENNY, secret, fake_link.last_code(JENNY)))

    assert kind is LinkErrorKind.UNAVAILABLE
    assert count(fake_link, dialect, "authenticate") == 1
    assert sleeps == []


@pytest.mark.parametrize("fault", ["server error", "connection reset"])
def test_starting_a_verification_is_not_retried_once_the_request_reached_link(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, fault: str
) -> None:
    found = client.lookup(JENNY)
    assert found.client_secret is not None
    if fault == "server error":
        fake_link.fail_next(1, status=503)
    else:
        fake_link.reset_next(1)

    kind = refused(lambda: client.start_verification(JENNY, found.client_secret or ""))

    assert kind is LinkErrorKind.UNAVAILABLE
    assert count(fake_link, dialect, "start_verification") == 1  # at most one SMS


def test_starting_a_verification_is_not_retried_after_a_read_timeout(
    make_client: Callable[..., LiveLinkClient], fake_link: FakeLinkServer, dialect: str
) -> None:
    client = make_client(read_timeout=0.2)
    found = client.lookup(JENNY)
    assert found.client_secret is not None
    fake_link.latency = 0.6

    kind = refused(lambda: client.start_verification(JENNY, found.client_secret or ""))

    assert kind is LinkErrorKind.UNAVAILABLE
    assert count(fake_link, dialect, "start_verification") == 1


def test_starting_a_verification_is_retried_when_the_connection_was_refused(
    fake_link: FakeLinkServer, dialect: str
) -> None:
    settings = fake_link.settings_for(dialect)
    with LiveLinkClient(settings) as first:
        found = first.lookup(JENNY)
    assert found.client_secret is not None
    fake_link.stop()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # Link comes back (on the same port) while the client waits to retry.
        sleeps.append(seconds)
        fake_link.start()

    with LiveLinkClient(settings, sleep=sleep) as client:
        started = client.start_verification(JENNY, found.client_secret)

    assert started.client_secret
    assert sleeps == [0.2]
    assert count(fake_link, dialect, "start_verification") == 1
    assert fake_link.last_code(JENNY)


# Timeouts and unreachable servers.


def test_a_lookup_is_unavailable_quickly_when_link_answers_too_slowly(
    make_client: Callable[..., LiveLinkClient], fake_link: FakeLinkServer, dialect: str
) -> None:
    client = make_client(read_timeout=0.2, max_retries=1)
    fake_link.latency = 1.0
    began = time.monotonic()

    kind = refused(lambda: client.lookup(JENNY))

    assert kind is LinkErrorKind.UNAVAILABLE
    assert time.monotonic() - began < 0.9  # two tries of 0.2 s, not two answers of 1 s
    assert count(fake_link, dialect, "lookup") == 2


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_unreachable_server_is_unavailable(
    make_client: Callable[..., LiveLinkClient], operation: str, sleeps: list[float]
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_port()}")

    assert refused(lambda: call(client, operation)) is LinkErrorKind.UNAVAILABLE
    # Nothing left our side, so even an SMS may be retried; a code submission never is.
    assert sleeps == ([] if operation == "authenticate" else [0.2, 0.4])


# Answers that are not what the API promises.


@pytest.mark.parametrize("operation", OPERATIONS)
def test_malformed_json_is_a_bad_response(
    client: LiveLinkClient, fake_link: FakeLinkServer, operation: str, sleeps: list[float]
) -> None:
    fake_link.malformed_next(1)

    assert refused(lambda: call(client, operation)) is LinkErrorKind.BAD_RESPONSE
    assert sleeps == []


ODD_ANSWERS: dict[str, dict[str, list[Any]]] = {
    "loginwithlink": {
        "lookup": [
            None,
            [],
            "userExistsOnLink",
            {},
            {"userExistsOnLink": "true"},
            {"userExistsOnLink": True},
            {"userExistsOnLink": True, "client_secret": 42, "redacted_phone_number": "+1**23"},
            {"userExistsOnLink": True, "client_secret": "cs_1", "redacted_phone_number": None},
        ],
        "start_verification": [
            [],
            {"result": "error"},
            {"result": "success", "redacted_phone_number": 123},
        ],
        "authenticate": [
            {},
            {"authenticationSuccessful": "true"},
            {"authenticationSuccessful": True},
            {"authenticationSuccessful": True, "user": "jenny@example.com"},
            {"authenticationSuccessful": True, "user": {"fullName": "Jenny Rosen"}},
            {"authenticationSuccessful": True, "user": {"email": ["jenny@example.com"]}},
        ],
    },
    "stripe": {
        "lookup": [
            {},
            {"exists": 1},
            {"exists": True},
            {"exists": True, "consumer_session": []},
            {"exists": True, "consumer_session": {"redacted_phone_number": "+1**23"}},
        ],
        "start_verification": [
            {},
            {"consumer_session": None},
            {"consumer_session": {"client_secret": 7}},
        ],
        "authenticate": [
            {},
            {"consumer_session": {"email_address": JENNY}},
            {"consumer_session": {"email_address": JENNY, "verification_sessions": "SMS"}},
            {"consumer_session": {"verification_sessions": [{"type": "SMS", "state": "VERIFIED"}]}},
            {
                "consumer_session": {
                    "email_address": JENNY,
                    "verification_sessions": [{"type": "SMS", "state": "STARTED"}, "x", None],
                }
            },
        ],
    },
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_answers_with_wrong_types_or_missing_fields_are_bad_responses(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, operation: str
) -> None:
    for body in ODD_ANSWERS[dialect][operation]:
        fake_link.answer_next(body)

        assert refused(lambda: call(client, operation)) is LinkErrorKind.BAD_RESPONSE, body


@pytest.mark.parametrize("status", [302, 404, 418])
def test_an_unexpected_status_is_a_bad_response(
    client: LiveLinkClient, fake_link: FakeLinkServer, dialect: str, status: int
) -> None:
    fake_link.answer_next({"userExistsOnLink": True, "exists": True}, status=status)

    assert refused(lambda: client.lookup(JENNY)) is LinkErrorKind.BAD_RESPONSE
    assert count(fake_link, dialect, "lookup") == 1  # a redirect is not followed


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_rate_limited_call_is_rate_limited_and_not_retried(
    client: LiveLinkClient, fake_link: FakeLinkServer, operation: str, sleeps: list[float]
) -> None:
    fake_link.rate_limit_next(1)

    assert refused(lambda: call(client, operation)) is LinkErrorKind.RATE_LIMITED
    assert sleeps == []


def test_a_wrong_publishable_key_is_a_bad_response_logged_for_the_operator(
    make_client: Callable[..., LiveLinkClient],
    fake_link: FakeLinkServer,
    dialect: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A misconfiguration, not an outage: retrying cannot help, and an operator must act.
    client = make_client(publishable_key="pk_test_not_ours")

    with caplog.at_level(logging.ERROR, logger="oidc_link.link.http"):
        assert refused(lambda: client.lookup(JENNY)) is LinkErrorKind.BAD_RESPONSE

    assert count(fake_link, dialect, "lookup") == 1
    assert "publishable_key" in caplog.text
    assert "pk_test_not_ours" not in caplog.text


# Error kinds each dialect reads from Link's words.


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (200, "Incorrect code", LinkErrorKind.INVALID_CODE),
        (400, "Incorrect code", LinkErrorKind.INVALID_CODE),
        (200, None, LinkErrorKind.INVALID_CODE),
        (200, "Verification code has expired", LinkErrorKind.CODE_EXPIRED),
        (400, "Session expired", LinkErrorKind.CODE_EXPIRED),
        (200, "Too many attempts", LinkErrorKind.TOO_MANY_ATTEMPTS),
        (400, "Maximum attempt count reached", LinkErrorKind.TOO_MANY_ATTEMPTS),
    ],
)
def test_loginwithlink_failed_authentication_is_read_from_its_message(
    fake_link: FakeLinkServer, status: int, message: str | None, expected: LinkErrorKind
) -> None:
    body: dict[str, Any] = {"authenticationSuccessful": False}
    if message is not None:
        body["errorMessage"] = message
    fake_link.answer_next(body, status=status)

    with LiveLinkClient(fake_link.settings_for("loginwithlink")) as client:
        assert refused(lambda: call(client, "authenticate")) is expected


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "consumer_verification_code_invalid", LinkErrorKind.INVALID_CODE),
        (400, "consumer_verification_expired", LinkErrorKind.CODE_EXPIRED),
        (400, "consumer_session_expired", LinkErrorKind.CODE_EXPIRED),
        (400, "consumer_verification_max_attempts_exceeded", LinkErrorKind.TOO_MANY_ATTEMPTS),
        (429, "consumer_verification_max_attempts_exceeded", LinkErrorKind.TOO_MANY_ATTEMPTS),
        (429, "rate_limit", LinkErrorKind.RATE_LIMITED),
        (400, "parameter_missing", LinkErrorKind.BAD_RESPONSE),
        (404, "consumer_session_expired", LinkErrorKind.BAD_RESPONSE),
    ],
)
def test_stripe_errors_are_read_from_their_codes(
    fake_link: FakeLinkServer, status: int, code: str, expected: LinkErrorKind
) -> None:
    fake_link.answer_next({"error": {"type": "invalid_request_error", "code": code}}, status)

    with LiveLinkClient(fake_link.settings_for("stripe")) as client:
        assert refused(lambda: call(client, "authenticate")) is expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("FAILED", LinkErrorKind.INVALID_CODE),
        ("EXPIRED", LinkErrorKind.CODE_EXPIRED),
        ("CANCELED", LinkErrorKind.CODE_EXPIRED),
    ],
)
def test_stripe_confirmation_without_a_verified_sms_session_is_refused(
    fake_link: FakeLinkServer, state: str, expected: LinkErrorKind
) -> None:
    session = {"email_address": JENNY, "verification_sessions": [{"type": "SMS", "state": state}]}
    fake_link.answer_next({"consumer_session": session})

    with LiveLinkClient(fake_link.settings_for("stripe")) as client:
        assert refused(lambda: call(client, "authenticate")) is expected


def test_stripe_rotates_the_client_secret_and_the_client_hands_back_the_newest(
    fake_link: FakeLinkServer,
) -> None:
    with LiveLinkClient(fake_link.settings_for("stripe")) as client:
        found = client.lookup(JENNY)
        assert found.client_secret is not None
        started = client.start_verification(JENNY, found.client_secret)
        code = fake_link.last_code(JENNY)

        assert started.client_secret != found.client_secret
        stale = refused(lambda: client.authenticate(JENNY, found.client_secret or "", code))
        assert stale is LinkErrorKind.CODE_EXPIRED
        assert client.authenticate(JENNY, started.client_secret, code).email == JENNY


def test_loginwithlink_can_send_form_bodies_with_another_code_field(
    fake_link: FakeLinkServer,
) -> None:
    fake_link.code_field = "otp"
    settings = fake_link.settings_for("loginwithlink", body_encoding="form", code_field="otp")

    with LiveLinkClient(settings) as client:
        secret = start(client)
        user = client.authenticate(JENNY, secret, fake_link.last_code(JENNY))

    assert user.email == JENNY
    assert user.name == "Jenny Rosen"


def test_a_blank_or_odd_name_from_loginwithlink_is_left_out(fake_link: FakeLinkServer) -> None:
    with LiveLinkClient(fake_link.settings_for("loginwithlink")) as client:
        for name in ["  ", 42, None]:
            user = {"email": "Jenny@Example.com", "fullName": name}
            fake_link.answer_next({"authenticationSuccessful": True, "user": user})

            assert call(client, "authenticate") == LinkUser(email=JENNY, name=None)


def test_a_blank_or_odd_city_from_loginwithlink_is_left_out(fake_link: FakeLinkServer) -> None:
    with LiveLinkClient(fake_link.settings_for("loginwithlink")) as client:
        for city in ["", " ", 7, ["Paris"], {"name": "Paris"}, None]:
            user = {"email": "Jenny@Example.com", "fullName": "Jenny Rosen", "city": city}
            fake_link.answer_next({"authenticationSuccessful": True, "user": user})

            assert call(client, "authenticate") == LinkUser(email=JENNY, name="Jenny Rosen")


def test_the_city_loginwithlink_tells_is_kept_as_given(fake_link: FakeLinkServer) -> None:
    with LiveLinkClient(fake_link.settings_for("loginwithlink")) as client:
        user = {"email": "Jenny@Example.com", "city": "Saint-Étienne"}
        fake_link.answer_next({"authenticationSuccessful": True, "user": user})

        assert call(client, "authenticate") == LinkUser(email=JENNY, city="Saint-Étienne")


# Connections and logs.


def test_the_client_reuses_one_pooled_connection(
    client: LiveLinkClient, fake_link: FakeLinkServer
) -> None:
    secret = start(client)
    client.authenticate(JENNY, secret, fake_link.last_code(JENNY))
    client.lookup("nobody@example.com")

    ports = {request.client_port for request in fake_link.requests}
    assert len(fake_link.requests) == 4
    assert len(ports) == 1


def test_cookies_from_link_are_never_sent_back(
    client: LiveLinkClient, fake_link: FakeLinkServer
) -> None:
    # One client serves every user: a cookie from one sign-in must not join another's.
    client.lookup(JENNY)
    client.lookup("sam@example.com")

    assert [request.sent_cookie for request in fake_link.requests] == [False, False]


def test_make_link_client_builds_the_live_client_for_live_settings(
    fake_link: FakeLinkServer,
) -> None:
    settings = LinkSettings(mode="live", live=fake_link.settings_for("stripe"))

    client = make_link_client(settings, FixedClock())

    assert isinstance(client, LiveLinkClient)
    assert client.lookup(JENNY).exists
    client.close()


def test_nothing_secret_is_logged_over_a_whole_flow(
    make_client: Callable[..., LiveLinkClient],
    fake_link: FakeLinkServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client()
    caplog.set_level(logging.DEBUG)
    # Even with urllib3's own debug logging on, which prints every request line.
    caplog.set_level(logging.DEBUG, logger="urllib3")
    secrets: list[str] = [JENNY, "Jenny@Example.com", fake_link.publishable_key]

    fake_link.fail_next(1)
    fake_link.reset_next(1)
    found = client.lookup(JENNY)
    assert found.client_secret is not None
    started = client.start_verification(JENNY, found.client_secret)
    code = fake_link.last_code(JENNY)
    refused(lambda: client.authenticate(JENNY, started.client_secret, wrong_code_for(code)))
    client.authenticate(JENNY, started.client_secret, code)
    down = make_client(base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(LinkError) as caught:
        down.lookup(JENNY)
    secrets += [found.client_secret, started.client_secret, code]

    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    assert "Link lookup: ok (HTTP 200)" in logged
    assert "Link authenticate: invalid_code (HTTP" in logged
    assert "Link lookup: unavailable (no answer)" in logged
    for secret in secrets:
        assert secret not in logged, secret
    # An error logged with its traceback does not carry the request URL along either.
    shown = "".join(traceback.format_exception(caught.value))
    for secret in secrets:
        assert secret not in shown, secret
