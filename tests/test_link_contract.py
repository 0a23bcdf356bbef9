"""One contract for every Link client (DESIGN.md §7.7): the sandbox, and the live client in
both wire dialects against the fake Link server. The interaction relies on exactly this."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fakeredis
import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import SandboxUser
from oidc_link.link import CheckAhead, LinkClient, LinkError, LinkErrorKind
from oidc_link.link.http import LiveLinkClient
from oidc_link.link.sandbox import CODE_LIFETIME, SandboxLinkClient
from oidc_link.store import Store
from oidc_link.store.sandbox import SandboxSessionStore
from tests.fake_link_server import USERS, FakeLinkServer
from tests.sandbox_console import announced_code, wrong_code_for

JENNY, SAM = USERS
JENNY_EMAIL = "jenny@example.com"
SAM_EMAIL = "sam@example.com"


@dataclass
class LinkWorld:
    """A client, and the side doors a test needs into the network behind it."""

    client: LinkClient
    sent_code: Callable[[str], str]  # the code last texted to an email
    expire_codes: Callable[[], None]
    gives_names: bool  # and cities: the profile beyond the email
    # Sends a check's reads (as the flow lock's round trip does) and its writes (as the
    # release does), on the Redis behind the client; None for a client that reads nothing.
    run_rider: Callable[[object], None] | None = None


def sandbox_sessions(
    request: pytest.FixtureRequest, clock: FixedClock
) -> tuple[SandboxSessionStore, redis.Redis]:
    """The sandbox's session table: the store, on fakeredis or on the real redis-server,
    and the Redis client under it."""
    if request.param == "sandbox-fakeredis":
        fake = fakeredis.FakeRedis(decode_responses=True)
        return Store(fake, clock).sandbox, fake
    client = redis.Redis.from_url(
        request.getfixturevalue("redis_server_url"), decode_responses=True
    )
    client.flushdb()
    request.addfinalizer(client.close)
    return Store(client, clock).sandbox, client


def rider_runner(client: redis.Redis) -> Callable[[object], None]:
    def run(rider: object) -> None:
        pipeline = client.pipeline(transaction=False)
        rider.queue(pipeline)  # type: ignore[attr-defined]
        rider.answer(pipeline.execute(raise_on_error=False))  # type: ignore[attr-defined]

    return run


@pytest.fixture(
    params=["sandbox-fakeredis", "sandbox-redis-server", "live-loginwithlink", "live-stripe"]
)
def world(request: pytest.FixtureRequest, clock: FixedClock) -> Iterator[LinkWorld]:
    if request.param.startswith("sandbox"):
        messages: list[str] = []
        # As config.py does, the sandbox is given lower-cased emails.
        users = [
            SandboxUser(user.email.lower(), user.phone, user.name, user.city) for user in USERS
        ]
        sessions, client = sandbox_sessions(request, clock)
        yield LinkWorld(
            client=SandboxLinkClient(users, clock, messages.append, sessions),
            sent_code=lambda email: announced_code(messages),
            expire_codes=lambda: clock.advance(CODE_LIFETIME),
            gives_names=True,
            run_rider=rider_runner(client),
        )
        return
    fake: FakeLinkServer = request.getfixturevalue("fake_link")
    dialect = request.param.removeprefix("live-")
    with LiveLinkClient(fake.settings_for(dialect), sleep=lambda seconds: None) as client:
        yield LinkWorld(
            client=client,
            sent_code=fake.last_code,
            expire_codes=fake.expire_codes,
            gives_names=dialect == "loginwithlink",
        )


def start(link: LinkClient, email: str = JENNY_EMAIL) -> str:
    """Look ``email`` up and text it a code; return the newest client secret."""
    found = link.lookup(email)
    assert found.client_secret is not None
    return link.start_verification(email, found.client_secret).client_secret


def refused(call: Callable[[], object]) -> LinkErrorKind:
    with pytest.raises(LinkError) as caught:
        call()
    return caught.value.kind


def test_an_unknown_email_does_not_exist(world: LinkWorld) -> None:
    found = world.client.lookup("nobody@example.com")

    assert not found.exists
    assert found.client_secret is None


@pytest.mark.parametrize("email", ["jenny@example.com", "JENNY@EXAMPLE.COM", " Jenny@Example.com "])
def test_a_known_email_exists_in_any_case(world: LinkWorld, email: str) -> None:
    found = world.client.lookup(email)

    assert found.exists
    assert found.client_secret
    assert found.redacted_phone is not None
    # A country digit may show, then only stars and the last two digits.
    assert re.fullmatch(r"\+\d\*+" + JENNY.phone[-2:], found.redacted_phone)


def test_the_sent_code_signs_the_user_in_with_a_lower_cased_email(world: LinkWorld) -> None:
    secret = start(world.client, "JENNY@example.com")

    user = world.client.authenticate(JENNY_EMAIL, secret, world.sent_code(JENNY_EMAIL))

    assert user.email == JENNY_EMAIL
    assert user.name == (JENNY.name if world.gives_names else None)
    assert user.city == (JENNY.city if world.gives_names else None)


def test_a_user_without_a_name_signs_in_without_one(world: LinkWorld) -> None:
    secret = start(world.client, SAM_EMAIL)

    user = world.client.authenticate(SAM_EMAIL, secret, world.sent_code(SAM_EMAIL))

    assert user.email == SAM_EMAIL
    assert user.name is None
    assert user.city is None


def test_starting_a_verification_shows_the_redacted_phone(world: LinkWorld) -> None:
    found = world.client.lookup(JENNY_EMAIL)
    assert found.client_secret is not None

    started = world.client.start_verification(JENNY_EMAIL, found.client_secret)

    assert started.client_secret
    assert started.redacted_phone == found.redacted_phone


def test_a_wrong_code_is_invalid_and_the_right_one_still_works(world: LinkWorld) -> None:
    secret = start(world.client)
    code = world.sent_code(JENNY_EMAIL)

    kind = refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, wrong_code_for(code)))

    assert kind is LinkErrorKind.INVALID_CODE
    assert world.client.authenticate(JENNY_EMAIL, secret, code).email == JENNY_EMAIL


def test_an_expired_code_is_refused_as_expired(world: LinkWorld) -> None:
    secret = start(world.client)
    code = world.sent_code(JENNY_EMAIL)
    world.expire_codes()

    kind = refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, code))

    assert kind is LinkErrorKind.CODE_EXPIRED


def test_five_wrong_codes_are_too_many_attempts(world: LinkWorld) -> None:
    secret = start(world.client)
    wrong = wrong_code_for(world.sent_code(JENNY_EMAIL))

    kinds = [
        refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, wrong)) for _ in range(5)
    ]

    assert kinds == [LinkErrorKind.INVALID_CODE] * 4 + [LinkErrorKind.TOO_MANY_ATTEMPTS]


def test_the_right_code_is_refused_after_too_many_attempts(world: LinkWorld) -> None:
    secret = start(world.client)
    code = world.sent_code(JENNY_EMAIL)
    for _ in range(5):
        refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, wrong_code_for(code)))

    kind = refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, code))

    assert kind in (LinkErrorKind.CODE_EXPIRED, LinkErrorKind.TOO_MANY_ATTEMPTS)


def test_a_code_signs_in_only_once(world: LinkWorld) -> None:
    secret = start(world.client)
    code = world.sent_code(JENNY_EMAIL)
    world.client.authenticate(JENNY_EMAIL, secret, code)

    kind = refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, code))

    assert kind is LinkErrorKind.CODE_EXPIRED


def test_a_resent_code_replaces_the_earlier_one(world: LinkWorld) -> None:
    found = world.client.lookup(JENNY_EMAIL)
    assert found.client_secret is not None
    first = world.client.start_verification(JENNY_EMAIL, found.client_secret)
    old_code = world.sent_code(JENNY_EMAIL)
    second = world.client.start_verification(JENNY_EMAIL, first.client_secret)
    new_code = world.sent_code(JENNY_EMAIL)
    secret = second.client_secret

    if old_code != new_code:  # one chance in a million that the two codes are the same
        kind = refused(lambda: world.client.authenticate(JENNY_EMAIL, secret, old_code))
        assert kind is LinkErrorKind.INVALID_CODE
    assert world.client.authenticate(JENNY_EMAIL, secret, new_code).email == JENNY_EMAIL


def checked_ahead(world: LinkWorld, hint: str | None, email: str, secret: str, code: str) -> str:
    """One check as the code step makes it: the client's state for the session ``hint``
    names read first (when the client reads any), written after; the outcome's kind."""
    check: CheckAhead | None = world.client.check_ahead(hint) if hint is not None else None
    if check is not None:
        assert world.run_rider is not None
        world.run_rider(check)
    try:
        world.client.authenticate(email, secret, code, check)
        outcome = "signed in"
    except LinkError as error:
        outcome = error.kind.value
    written = check.after() if check is not None else None
    if written is not None:
        assert world.run_rider is not None
        world.run_rider(written)
    return outcome


def test_checks_read_ahead_count_wrong_codes_and_sign_in_once_as_checks_alone_do(
    world: LinkWorld,
) -> None:
    found = world.client.lookup(JENNY_EMAIL)
    assert found.client_secret is not None
    started = world.client.start_verification(JENNY_EMAIL, found.client_secret)
    code = world.sent_code(JENNY_EMAIL)
    hint, secret = started.session_hint, started.client_secret

    wrong = checked_ahead(world, hint, JENNY_EMAIL, secret, wrong_code_for(code))
    right = checked_ahead(world, hint, JENNY_EMAIL, secret, code)
    again = checked_ahead(world, hint, JENNY_EMAIL, secret, code)

    assert (wrong, right) == ("invalid_code", "signed in")
    assert again != "signed in"
