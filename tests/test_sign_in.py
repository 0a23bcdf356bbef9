"""sign_in.py, the one seam that finishes a sign-in (DESIGN.md §4 step 5): each way of
proving who one is (a verified SMS code, the SSO session, Allow on the consent page) and an
Account Link's verification, through the services the real app builds.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.models import (
    AccountLinkTarget,
    AuthorizationCode,
    FlowStep,
    Identity,
    SsoSession,
)
from oidc_link.services import Services, build_services
from oidc_link.sign_in import Finished, Next, SignInRequest, Via
from oidc_link.store.accounts import AccountRead
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    SHOP_CALLBACK,
    SHOP_SECRET,
    provider_config,
)

# On a real Redis Cluster too: every test (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

PARTNER_CALLBACK = "https://partner.example.test/callback"
BROWSER = "browser-binding-cookie-value"
# A well-formed S256 code_challenge (RFC 7636 §4.2): these tests never redeem at /token.
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture
def settings() -> Settings:
    """The usual clients, and a third-party one that needs consent."""
    config = provider_config()
    config["clients"].append(  # type: ignore[union-attr]
        {
            "client_id": "partner",
            "client_secret": "partner-secret-0123456789abcdef",
            "redirect_uris": [PARTNER_CALLBACK],
            "third_party": True,
        }
    )
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


@pytest.fixture
def services(settings: Settings, redis_client: redis.Redis, live_clock: FixedClock) -> Services:
    services = build_services(settings, clock=live_clock, redis_client=redis_client)
    services.build()
    return services


def request_for(client_id: str, redirect_uri: str) -> SignInRequest:
    return SignInRequest(
        client_id,
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": "s-1",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        },
    )


def jenny(services: Services) -> Identity:
    return Identity(email=JENNY, name="Jenny Rosen", auth_time=services.clock.now())


def code_record(services: Services, finished: Finished) -> AuthorizationCode:
    """The record of the issued code, read by redeeming it as /token would."""
    assert finished.next is Next.REDIRECT and finished.location is not None
    location = urlsplit(finished.location)
    query = parse_qs(location.query)
    assert query["iss"] == [ISSUER] and query["state"] == ["s-1"]
    redirect_uri = location._replace(query="").geturl()
    client_id = {SHOP_CALLBACK: "shop", PARTNER_CALLBACK: "partner"}[redirect_uri]
    # The RP's verifier: its S256 is CHALLENGE (RFC 7636 Appendix B).
    redemption, _, _ = services.tokens.redeem(
        query["code"][0], services.settings.client(client_id), redirect_uri, CHALLENGE
    )
    assert redemption.record is not None
    return redemption.record


def sid_of_code(services: Services, finished: Finished) -> str | None:
    """The sid the issued code carries."""
    return code_record(services, finished).sid


def test_a_verified_code_starts_a_session_and_the_code_carries_its_sid(
    services: Services,
) -> None:
    finished = services.sign_in.complete(
        request_for("shop", SHOP_CALLBACK), jenny(services), Via.CODE, browser=BROWSER
    )
    assert finished.session_secret is not None
    session = services.sessions.find(finished.session_secret)
    assert session is not None and session.identity.email == JENNY
    assert finished.location is not None and finished.location.startswith(SHOP_CALLBACK + "?")
    assert sid_of_code(services, finished) == session.sid


def subject_of_code(services: Services, finished: Finished) -> str:
    """The sub the issued code carries."""
    return code_record(services, finished).subject


def answered(read: AccountRead | None, redis_client: redis.Redis) -> AccountRead:
    """``read`` sent as the code step sends it: a rider in another round trip."""
    assert read is not None
    pipeline = redis_client.pipeline(transaction=False)
    # Two GETs (the email index and the account: apart on a cluster, so no MGET).
    assert read.queue(pipeline) == 2
    read.answer(pipeline.execute())
    assert read.answered
    return read


def test_the_account_read_ahead_for_the_client_and_email_decides_the_codes_sub(
    services: Services, redis_client: redis.Redis
) -> None:
    ahead = answered(services.sign_in.read_ahead("shop", JENNY), redis_client)
    # Bound elsewhere after the read: the code carries the account as read ahead.
    assert services.store.accounts.bind_email("shop", JENNY, "acct_bound_meanwhile")
    shop = request_for("shop", SHOP_CALLBACK)

    read = services.sign_in.complete(
        shop, jenny(services), Via.CODE, browser=BROWSER, account_read=ahead
    )
    again = services.sign_in.complete(shop, jenny(services), Via.CODE, browser=BROWSER)

    assert subject_of_code(services, read) == ahead.derived
    assert subject_of_code(services, again) == "acct_bound_meanwhile"


def test_an_account_read_ahead_for_another_email_or_client_is_not_used(
    services: Services, redis_client: redis.Redis
) -> None:
    shop = request_for("shop", SHOP_CALLBACK)
    expected = subject_of_code(
        services, services.sign_in.complete(shop, jenny(services), Via.CODE, browser=BROWSER)
    )
    assert services.sign_in.read_ahead("no-such-client", JENNY) is None

    for ahead in (
        answered(services.sign_in.read_ahead("shop", "mallory@example.com"), redis_client),
        answered(services.sign_in.read_ahead("partner", JENNY), redis_client),
    ):
        finished = services.sign_in.complete(
            shop, jenny(services), Via.CODE, browser=BROWSER, account_read=ahead
        )
        assert subject_of_code(services, finished) == expected != ahead.derived


def test_a_verified_code_for_a_client_without_consent_starts_the_session_then_asks(
    services: Services,
) -> None:
    identity = jenny(services)
    finished = services.sign_in.complete(
        request_for("partner", PARTNER_CALLBACK), identity, Via.CODE, browser=BROWSER
    )
    assert finished.next is Next.CONSENT and finished.location is None
    assert finished.flow is not None and finished.flow.step == FlowStep.CONSENT
    assert finished.flow.identity == identity
    assert finished.session_secret is not None
    assert services.sessions.find(finished.session_secret) is not None


def test_the_sso_session_answers_with_a_code_of_its_sid_and_starts_no_session(
    services: Services,
) -> None:
    _, session = services.sessions.begin(jenny(services))
    finished = services.sign_in.complete(
        request_for("shop", SHOP_CALLBACK),
        session.identity,
        Via.SESSION,
        browser=BROWSER,
        session=session,
    )
    assert finished.session_secret is None
    assert sid_of_code(services, finished) == session.sid


def test_the_sso_session_at_a_client_without_consent_goes_to_the_consent_step(
    services: Services,
) -> None:
    _, session = services.sessions.begin(jenny(services))
    finished = services.sign_in.complete(
        request_for("partner", PARTNER_CALLBACK),
        session.identity,
        Via.SESSION,
        browser=BROWSER,
        session=session,
    )
    assert finished.next is Next.CONSENT and finished.session_secret is None
    assert finished.flow is not None and finished.flow.step == FlowStep.CONSENT


def test_allow_remembers_the_consent_and_the_next_sign_in_goes_straight_to_the_code(
    services: Services,
) -> None:
    identity = jenny(services)
    request = request_for("partner", PARTNER_CALLBACK)
    allowed = services.sign_in.complete(request, identity, Via.CONSENT, browser=None)
    assert sid_of_code(services, allowed) is None  # no session in this browser
    again = services.sign_in.complete(request, identity, Via.CODE, browser=BROWSER)
    assert again.next is Next.REDIRECT


def test_allow_with_another_persons_session_in_the_browser_issues_a_code_without_its_sid(
    services: Services,
) -> None:
    now = services.clock.now()
    _, sams = services.sessions.begin(Identity(email="sam@example.com", name=None, auth_time=now))
    _, jennys = services.sessions.begin(jenny(services))
    request = request_for("partner", PARTNER_CALLBACK)

    def allow(session: SsoSession) -> Finished:
        return services.sign_in.complete(
            request, jennys.identity, Via.CONSENT, browser=None, session=session
        )

    assert sid_of_code(services, allow(sams)) is None
    assert sid_of_code(services, allow(jennys)) == jennys.sid


def test_an_account_link_binds_the_email_and_returns_without_session_or_code(
    services: Services,
) -> None:
    account = services.accounts.create("shop", "express")
    target = AccountLinkTarget(
        "account_onboarding", account.id, "shop", "https://shop.example.test/done"
    )
    finished = services.sign_in.complete(
        SignInRequest("shop", {}, target), jenny(services), Via.CODE, browser=BROWSER
    )
    assert finished == Finished(Next.REDIRECT, "https://shop.example.test/done")
    bound = services.accounts.find("shop", account.id)
    assert bound is not None and bound.email == JENNY


def test_an_account_link_for_an_email_another_account_has_starts_over_at_the_email_step(
    services: Services,
) -> None:
    # Jenny signed in at the shop once: her email is the shop's account of her own.
    services.sign_in.complete(
        request_for("shop", SHOP_CALLBACK), jenny(services), Via.CODE, browser=BROWSER
    )
    account = services.accounts.create("shop", "express")
    target = AccountLinkTarget(
        "account_onboarding", account.id, "shop", "https://shop.example.test/done"
    )
    finished = services.sign_in.complete(
        SignInRequest("shop", {}, target), jenny(services), Via.CODE, browser=BROWSER
    )
    assert finished.next is Next.EMAIL_TAKEN and finished.session_secret is None
    assert finished.flow is not None and finished.flow.step == FlowStep.EMAIL
    assert finished.flow.account_link == target
