"""A lookup's handle carries its session to start_verification (link/sandbox.py _Handle):
what it opens is what decrypting the same text opens, for the email it was opened for and
within the session's hour; under another key than the one it was sealed with, the text is
decrypted as any other handle is."""

from __future__ import annotations

import pytest

from oidc_link.clock import FixedClock
from oidc_link.config import SandboxUser
from oidc_link.link import LinkError, LinkErrorKind
from oidc_link.link.sandbox import SESSION_LIFETIME, SandboxLinkClient, _Handle
from oidc_link.store import Store
from tests.conftest import ON_REDIS_CLUSTER

pytestmark = ON_REDIS_CLUSTER

JENNY = SandboxUser(email="jenny@example.com", phone="+14155550123", name="Jenny Rosen")
SAM = SandboxUser(email="sam@example.com", phone="+447700900123")


@pytest.fixture
def link(clock: FixedClock, store: Store) -> SandboxLinkClient:
    return SandboxLinkClient([JENNY, SAM], clock, lambda _message: None, store.sandbox)


def _handle(link: SandboxLinkClient, email: str) -> str:
    found = link.lookup(email)
    assert type(found.client_secret) is _Handle
    return found.client_secret


@pytest.mark.parametrize("email", [JENNY.email, SAM.email, "JENNY@example.com", "nobody@x.io"])
@pytest.mark.parametrize("later", [0, SESSION_LIFETIME - 1, SESSION_LIFETIME, 2 * SESSION_LIFETIME])
def test_a_carried_session_opens_as_the_decrypted_text_does(
    link: SandboxLinkClient, clock: FixedClock, email: str, later: int
) -> None:
    handle = _handle(link, JENNY.email)
    plain = str(handle)
    assert type(plain) is str and plain == handle
    clock.advance(later)
    carried = link._open(handle, email.strip().lower())
    decrypted = link._open(plain, email.strip().lower())
    assert carried == decrypted
    if carried is not None:
        assert carried is handle.session


def test_under_another_key_the_text_is_decrypted(link: SandboxLinkClient) -> None:
    handle = _handle(link, JENNY.email)
    handle.key = bytes(32)  # not the key kept: the carried session is not used
    handle.session = handle.session.__class__("other", JENNY.email, handle.session.opened_at)
    opened = link._open(handle, JENNY.email)
    assert opened is not None and opened.id != "other"


def test_the_email_step_gets_the_same_answers_either_way(
    link: SandboxLinkClient, clock: FixedClock
) -> None:
    handle = _handle(link, JENNY.email)
    for secret in (handle, str(handle)):
        started = link.start_verification(JENNY.email, secret)
        assert started.session_hint == handle.session.id
        assert type(started.client_secret) is str
    with pytest.raises(LinkError) as caught:
        link.start_verification(SAM.email, handle)
    assert caught.value.kind is LinkErrorKind.CODE_EXPIRED
    clock.advance(SESSION_LIFETIME)
    for secret in (handle, str(handle)):
        with pytest.raises(LinkError):
            link.start_verification(JENNY.email, secret)
