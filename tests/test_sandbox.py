"""The sandbox Link network: lookups, codes announced to the operator, magic codes, expiry,
attempt limits, single-use sessions, and make_link_client choosing it from LinkSettings."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import LinkSettings, SandboxUser
from oidc_link.link import LinkClient, LinkError, LinkErrorKind, LinkUser
from oidc_link.link.sandbox import (
    CODE_LIFETIME,
    MAX_ATTEMPTS,
    SESSION_LIFETIME,
    SandboxLinkClient,
    redact_phone,
)
from oidc_link.link.switch import make_link_client
from oidc_link.store import Store, keyspace
from tests.conftest import ON_REDIS_CLUSTER
from tests.sandbox_console import announced_code, wrong_code_for

pytestmark = ON_REDIS_CLUSTER

JENNY = SandboxUser(email="jenny@example.com", phone="+14155550123", name="Jenny Rosen")
SAM = SandboxUser(email="sam@example.com", phone="+447700900123")


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture
def link(clock: FixedClock, messages: list[str], store: Store) -> SandboxLinkClient:
    return SandboxLinkClient([JENNY, SAM], clock, messages.append, store.sandbox)


def start(link: LinkClient, email: str = JENNY.email) -> str:
    """Look ``email`` up and start a verification; return the session's client secret."""
    found = link.lookup(email)
    assert found.client_secret is not None
    started = link.start_verification(email, found.client_secret)
    return started.client_secret


def kind_of(caught: pytest.ExceptionInfo[LinkError]) -> LinkErrorKind:
    return caught.value.kind


# Lookup


def test_an_unknown_email_does_not_exist(link: SandboxLinkClient) -> None:
    found = link.lookup("nobody@example.com")

    assert not found.exists
    assert found.client_secret is None
    assert found.redacted_phone is None


@pytest.mark.parametrize(
    "email", ["jenny@example.com", "JENNY@Example.COM", "  jenny@example.com "]
)
def test_a_known_email_exists_in_any_case(link: SandboxLinkClient, email: str) -> None:
    found = link.lookup(email)

    assert found.exists
    assert found.client_secret is not None
    assert found.client_secret.startswith("sandbox_cs_")
    assert found.redacted_phone == "+1********23"


def test_each_lookup_opens_a_new_session(link: SandboxLinkClient) -> None:
    first = link.lookup(JENNY.email)
    second = link.lookup(JENNY.email)

    assert first.client_secret != second.client_secret


def test_a_redacted_phone_keeps_only_the_prefix_and_last_two_digits() -> None:
    assert redact_phone("+447700900123") == "+4*********23"
    assert "55501" not in redact_phone("+14155550123")
    assert len(redact_phone("+14155550123")) == len("+14155550123")


# Verification


def test_start_verification_announces_a_code_that_authenticates(
    link: SandboxLinkClient, messages: list[str]
) -> None:
    found = link.lookup(JENNY.email)
    assert found.client_secret is not None

    started = link.start_verification(JENNY.email, found.client_secret)

    assert started.redacted_phone == "+1********23"
    # The handle carries the code sent: a new one, which replaces the lookup's (Link may
    # rotate the client secret on any answer).
    assert started.client_secret.startswith("sandbox_cs_")
    assert started.client_secret != found.client_secret
    assert len(messages) == 1
    assert JENNY.email in messages[0]
    user = link.authenticate(JENNY.email, started.client_secret, announced_code(messages))
    assert user == LinkUser(email="jenny@example.com", name="Jenny Rosen")


def test_the_announced_code_works_when_the_email_is_typed_in_another_case(
    link: SandboxLinkClient, messages: list[str]
) -> None:
    secret = start(link, "Jenny@Example.com")

    user = link.authenticate("JENNY@EXAMPLE.COM", secret, announced_code(messages))

    assert user.email == "jenny@example.com"


def test_a_user_configured_in_mixed_case_can_sign_in(
    clock: FixedClock, messages: list[str], store: Store
) -> None:
    link = SandboxLinkClient(
        [SandboxUser(email="Mixed@Example.com", phone="+14155550199")],
        clock,
        messages.append,
        store.sandbox,
    )

    secret = start(link, "mixed@example.com")
    user = link.authenticate("mixed@example.com", secret, announced_code(messages))

    assert user.email.lower() == "mixed@example.com"


def test_a_session_belongs_to_the_email_it_was_opened_for(
    link: SandboxLinkClient, messages: list[str]
) -> None:
    secret = start(link, JENNY.email)

    with pytest.raises(LinkError) as caught:
        link.authenticate(SAM.email, secret, announced_code(messages))

    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


def test_an_unknown_session_cannot_start_verification(link: SandboxLinkClient) -> None:
    with pytest.raises(LinkError) as caught:
        link.start_verification(JENNY.email, "sandbox_cs_made_up")

    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


# Magic codes


def test_magic_code_000000_always_works(link: SandboxLinkClient) -> None:
    secret = start(link)

    assert link.authenticate(JENNY.email, secret, "000000").email == JENNY.email


def test_magic_code_000000_works_even_before_a_code_was_sent(link: SandboxLinkClient) -> None:
    found = link.lookup(SAM.email)
    assert found.client_secret is not None

    user = link.authenticate(SAM.email, found.client_secret, "000000")

    assert user == LinkUser(email="sam@example.com", name=None)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("000001", LinkErrorKind.INVALID_CODE),
        ("000002", LinkErrorKind.CODE_EXPIRED),
        ("000003", LinkErrorKind.TOO_MANY_ATTEMPTS),
    ],
)
def test_magic_failure_codes_raise_their_error(
    link: SandboxLinkClient, code: str, kind: LinkErrorKind
) -> None:
    secret = start(link)

    with pytest.raises(LinkError) as caught:
        link.authenticate(JENNY.email, secret, code)

    assert kind_of(caught) is kind
    assert str(caught.value).startswith(kind.value)


# Expiry and attempts


def test_a_code_works_until_the_end_of_its_lifetime(
    link: SandboxLinkClient, clock: FixedClock, messages: list[str]
) -> None:
    secret = start(link)
    clock.advance(CODE_LIFETIME - 1)

    assert link.authenticate(JENNY.email, secret, announced_code(messages)).email == JENNY.email


def test_a_code_expires_when_the_clock_moves_past_its_lifetime(
    link: SandboxLinkClient, clock: FixedClock, messages: list[str]
) -> None:
    secret = start(link)
    clock.advance(CODE_LIFETIME)

    with pytest.raises(LinkError) as caught:
        link.authenticate(JENNY.email, secret, announced_code(messages))

    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


def test_a_wrong_code_is_invalid(link: SandboxLinkClient, messages: list[str]) -> None:
    secret = start(link)

    with pytest.raises(LinkError) as caught:
        link.authenticate(JENNY.email, secret, wrong_code_for(announced_code(messages)))

    assert kind_of(caught) is LinkErrorKind.INVALID_CODE


def test_five_wrong_codes_are_too_many_attempts_and_close_the_session(
    link: SandboxLinkClient, messages: list[str]
) -> None:
    secret = start(link)
    code = announced_code(messages)
    kinds = []
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(LinkError) as caught:
            link.authenticate(JENNY.email, secret, wrong_code_for(code))
        kinds.append(kind_of(caught))

    assert MAX_ATTEMPTS == 5
    assert kinds == [LinkErrorKind.INVALID_CODE] * 4 + [LinkErrorKind.TOO_MANY_ATTEMPTS]
    with pytest.raises(LinkError) as caught:
        link.authenticate(JENNY.email, secret, code)
    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


def test_a_wrong_code_followed_by_the_right_one_still_works(
    link: SandboxLinkClient, messages: list[str]
) -> None:
    secret = start(link)
    code = announced_code(messages)
    with pytest.raises(LinkError):
        link.authenticate(JENNY.email, secret, wrong_code_for(code))

    assert link.authenticate(JENNY.email, secret, code).email == JENNY.email


def test_a_new_code_replaces_the_old_one_and_resets_attempts(
    link: SandboxLinkClient, messages: list[str]
) -> None:
    secret = start(link)
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(LinkError):
            link.authenticate(JENNY.email, secret, wrong_code_for(announced_code(messages)))

    secret = link.start_verification(JENNY.email, secret).client_secret

    assert len(messages) == 2
    with pytest.raises(LinkError) as caught:
        link.authenticate(JENNY.email, secret, wrong_code_for(announced_code(messages)))
    assert kind_of(caught) is LinkErrorKind.INVALID_CODE
    assert link.authenticate(JENNY.email, secret, announced_code(messages)).email == JENNY.email


def test_a_finished_session_cannot_be_reused(link: SandboxLinkClient, messages: list[str]) -> None:
    secret = start(link)
    code = announced_code(messages)
    link.authenticate(JENNY.email, secret, code)

    for attempt in (code, "000000"):
        with pytest.raises(LinkError) as caught:
            link.authenticate(JENNY.email, secret, attempt)
        assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED
    # Sending a code takes no state (the handle carries it), but no code of a finished
    # session signs anyone in.
    again = link.start_verification(JENNY.email, secret).client_secret
    with pytest.raises(LinkError) as caught:
        link.authenticate(JENNY.email, again, announced_code(messages))
    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


def test_a_handle_sealed_with_another_key_or_changed_is_an_unknown_session(
    clock: FixedClock, messages: list[str], store: Store, redis_client: redis.Redis
) -> None:
    link = SandboxLinkClient([JENNY], clock, messages.append, store.sandbox)
    secret = start(link)
    redis_client.delete(keyspace.SANDBOX_KEY)
    elsewhere = SandboxLinkClient(
        [JENNY], clock, messages.append, Store(redis_client, clock).sandbox
    )

    for handle, using in ((secret, elsewhere), (secret[:-4] + "AAAA", link)):
        with pytest.raises(LinkError) as caught:
            using.authenticate(JENNY.email, handle, "000000")
        assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


def test_a_session_ends_an_hour_after_its_lookup(
    link: SandboxLinkClient, clock: FixedClock
) -> None:
    found = link.lookup(JENNY.email)
    assert found.client_secret is not None
    clock.advance(SESSION_LIFETIME)

    with pytest.raises(LinkError) as caught:
        link.start_verification(JENNY.email, found.client_secret)

    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


# Sessions shared by every worker and instance (the store)


def test_a_session_opened_by_one_worker_takes_its_code_at_another(
    clock: FixedClock, messages: list[str], store: Store
) -> None:
    first, second = (
        SandboxLinkClient([JENNY], clock, messages.append, store.sandbox) for _ in "ab"
    )
    found = first.lookup(JENNY.email)
    assert found.client_secret is not None
    secret = second.start_verification(JENNY.email, found.client_secret).client_secret

    user = first.authenticate(JENNY.email, secret, announced_code(messages))

    assert user.email == JENNY.email


def test_wrong_codes_at_different_workers_add_up_to_the_same_attempt_limit(
    clock: FixedClock, messages: list[str], store: Store
) -> None:
    workers = [SandboxLinkClient([JENNY], clock, messages.append, store.sandbox) for _ in range(2)]
    secret = start(workers[0])
    wrong = wrong_code_for(announced_code(messages))
    kinds = []
    for attempt in range(MAX_ATTEMPTS):
        with pytest.raises(LinkError) as caught:
            workers[attempt % 2].authenticate(JENNY.email, secret, wrong)
        kinds.append(kind_of(caught))

    assert kinds[-1] is LinkErrorKind.TOO_MANY_ATTEMPTS
    assert kinds[:-1] == [LinkErrorKind.INVALID_CODE] * (MAX_ATTEMPTS - 1)


def test_of_concurrent_checks_of_one_session_each_counts_once_and_one_code_signs_in_once(
    clock: FixedClock, messages: list[str], store: Store
) -> None:
    workers = [SandboxLinkClient([JENNY], clock, messages.append, store.sandbox) for _ in range(8)]
    secret = start(workers[0])
    code = announced_code(messages)
    barrier = threading.Barrier(8)

    def check(index: int) -> str:
        barrier.wait(timeout=10)
        guess = code if index == 7 else wrong_code_for(code)
        try:
            workers[index].authenticate(JENNY.email, secret, guess)
        except LinkError as error:
            return error.kind.value
        return "signed in"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(check, range(8)))

    # Four wrong codes, then the fifth ends the session: whatever the order, never more than
    # MAX_ATTEMPTS wrong codes count, and the right one signs in at most once.
    assert outcomes.count("invalid_code") <= MAX_ATTEMPTS - 1
    assert outcomes.count("too_many_attempts") <= 1
    assert outcomes.count("signed in") <= 1
    assert outcomes.count("signed in") + outcomes.count("too_many_attempts") == 1
    with pytest.raises(LinkError) as caught:
        workers[0].authenticate(JENNY.email, secret, code)
    assert kind_of(caught) is LinkErrorKind.CODE_EXPIRED


def test_a_lookup_and_a_code_sent_keep_nothing_but_the_sealing_key(
    link: SandboxLinkClient, redis_client: redis.Redis
) -> None:
    start(link)

    assert list(redis_client.scan_iter(keyspace.pattern())) == [keyspace.SANDBOX_KEY]


def test_a_checked_code_keeps_its_session_s_state_with_a_ttl_never_the_code(
    link: SandboxLinkClient, redis_client: redis.Redis, messages: list[str]
) -> None:
    secret = start(link)
    code = announced_code(messages)
    with pytest.raises(LinkError):
        link.authenticate(JENNY.email, secret, wrong_code_for(code))

    keys = list(redis_client.scan_iter(keyspace.pattern("sandbox_session")))

    assert len(keys) == 1
    assert 0 < redis_client.ttl(keys[0]) <= SESSION_LIFETIME
    assert redis_client.get(keys[0]) == "1 1"  # the first code sent, one wrong attempt
    assert secret not in keys[0]


# make_link_client


def test_make_link_client_builds_the_sandbox_from_link_settings(
    clock: FixedClock, messages: list[str], store: Store
) -> None:
    settings = LinkSettings(mode="sandbox", sandbox_users=(JENNY,))

    link = make_link_client(settings, clock, messages.append, store.sandbox)

    assert isinstance(link, SandboxLinkClient)
    assert not link.lookup(SAM.email).exists
    secret = start(link, JENNY.email)
    assert len(messages) == 1
    assert link.authenticate(JENNY.email, secret, announced_code(messages)).name == "Jenny Rosen"


def test_make_link_client_prints_codes_to_the_console_by_default(
    clock: FixedClock, capsys: pytest.CaptureFixture[str], store: Store
) -> None:
    link = make_link_client(
        LinkSettings(sandbox_users=(JENNY,)), clock, sandbox_sessions=store.sandbox
    )

    start(link, JENNY.email)

    assert "[sandbox] Link verification code for jenny@example.com:" in capsys.readouterr().err


def test_make_link_client_refuses_an_unknown_mode(clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="live"):
        make_link_client(LinkSettings(mode="live"), clock)


# A code check read ahead (the sign-in's code step: the state read with the flow's lock,
# written with its release) decides as the one-script check does.

STATES = [None, "ended", "1 1", "1 4", "2 3", "3 1"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("sent", [1, 2, 3])
@pytest.mark.parametrize("right", [True, False])
def test_a_check_read_ahead_decides_and_writes_as_the_script_does(
    store: Store, redis_client: redis.Redis, state: str | None, sent: int, right: bool
) -> None:
    for session in ("by-script", "read-ahead"):
        if state is not None:
            redis_client.set(keyspace.sandbox_session(session), state, ex=600)
    by_script = store.sandbox.check_code("by-script", sent, right, MAX_ATTEMPTS, 600)
    ahead = store.sandbox.check_ahead("read-ahead")
    reading = redis_client.pipeline(transaction=False)
    ahead.queue(reading)
    ahead.answer(reading.execute(raise_on_error=False))
    read_ahead = ahead.check(sent, right, MAX_ATTEMPTS, 600)
    written = ahead.after()
    if written is not None:
        writing = redis_client.pipeline(transaction=False)
        written.queue(writing)
        written.answer(writing.execute(raise_on_error=False))

    assert read_ahead == by_script
    left = [redis_client.get(keyspace.sandbox_session(s)) for s in ("by-script", "read-ahead")]
    assert left[0] == left[1]
    assert redis_client.ttl(keyspace.sandbox_session("read-ahead")) in range(1, 601)


def test_a_check_read_ahead_is_used_only_for_the_session_it_read(
    link: SandboxLinkClient, store: Store, redis_client: redis.Redis, messages: list[str]
) -> None:
    secret = start(link)
    code = announced_code(messages)
    other = store.sandbox.check_ahead("another-session")
    reading = redis_client.pipeline(transaction=False)
    other.queue(reading)
    other.answer(reading.execute())

    with pytest.raises(LinkError):
        link.authenticate(JENNY.email, secret, wrong_code_for(code), other)

    assert other.after() is None  # not used: the check ran as the script, on its own
    keys = list(redis_client.scan_iter(keyspace.pattern("sandbox_session")))
    assert [redis_client.get(key) for key in keys] == ["1 1"]


def test_a_check_whose_state_was_not_read_runs_the_script(
    link: SandboxLinkClient, redis_client: redis.Redis
) -> None:
    found = link.lookup(JENNY.email)
    assert found.client_secret is not None
    started = link.start_verification(JENNY.email, found.client_secret)
    assert started.session_hint is not None
    unread = link.check_ahead(started.session_hint)

    assert link.authenticate(JENNY.email, started.client_secret, "000000", unread).name
    assert unread.after() is None
    keys = list(redis_client.scan_iter(keyspace.pattern("sandbox_session")))
    assert [redis_client.get(key) for key in keys] == ["ended"]


def test_a_check_whose_read_failed_runs_the_script_and_the_step_goes_on(
    link: SandboxLinkClient, redis_client: redis.Redis, messages: list[str]
) -> None:
    found = link.lookup(JENNY.email)
    assert found.client_secret is not None
    started = link.start_verification(JENNY.email, found.client_secret)
    assert started.session_hint is not None
    failed = link.check_ahead(started.session_hint)
    failed.answer([redis.ResponseError("LOADING Redis is loading the dataset in memory")])

    with pytest.raises(LinkError) as caught:
        link.authenticate(
            JENNY.email, started.client_secret, wrong_code_for(announced_code(messages)), failed
        )

    assert kind_of(caught) is LinkErrorKind.INVALID_CODE
    assert failed.after() is None
    keys = list(redis_client.scan_iter(keyspace.pattern("sandbox_session")))
    assert [redis_client.get(key) for key in keys] == ["1 1"]
