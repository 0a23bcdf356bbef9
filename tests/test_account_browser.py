"""A person in a real browser (headless Chromium) follows a platform's Account and Login Links.

The provider and a platform's pages run on loopback ports; the platform mints them through
the /v1 API over real HTTP. JavaScript is off: the pages must not need it.
"""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
import requests

from oidc_link.ids import digest
from tests.live_server import (
    LiveServer,
    RelyingPartyServer,
    start_live_server,
    start_relying_party_server,
)
from tests.sandbox_console import announced_code
from tests.test_browser import chromium, new_page, playwright_api  # noqa: F401 - fixtures

expect = playwright_api.expect
PLATFORM_KEY = "sk_test_platform_b7Yq2ZkP9wLm4RtX8vNc3Jd"
JENNY = "jenny@example.com"


@pytest.fixture
def platform_site() -> Iterator[RelyingPartyServer]:
    site = start_relying_party_server()
    yield site
    site.stop()


@pytest.fixture
def provider(platform_site: RelyingPartyServer) -> Iterator[LiveServer]:
    platform = {
        "client_id": "market",
        "client_secret": "market-secret-0123456789abcdef",
        "redirect_uris": [platform_site.url + "/callback"],
        "name": "Corner Market",
        "api_keys": [digest(PLATFORM_KEY)],
    }
    server = start_live_server(fakeredis.FakeRedis(decode_responses=True), [platform])
    yield server
    server.stop()


def api(provider: LiveServer, path: str, **params: str) -> dict:
    response = requests.post(
        provider.url + path,
        data=params,
        headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_person_onboards_through_an_account_link_and_returns_to_the_platform(
    new_page,  # noqa: F811 - the fixture
    provider: LiveServer,
    platform_site: RelyingPartyServer,
) -> None:
    account = api(provider, "/v1/accounts", type="express", email=JENNY)
    account_link = api(
        provider,
        "/v1/account_links",
        account=account["id"],
        type="account_onboarding",
        refresh_url=platform_site.url + "/refresh",
        return_url=platform_site.url + "/return",
    )
    page = new_page()

    page.goto(account_link["url"])

    # The token left the address bar at once.
    token = account_link["url"].rsplit("/", 1)[1]
    assert token not in page.url
    assert page.url.startswith(provider.url + "/signin/")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Verify your details for Corner Market"
    )
    expect(page.get_by_label("Email")).to_have_value(JENNY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(provider.console))
    page.get_by_role("button", name="Verify").click()

    assert page.url == platform_site.url + "/return"
    retrieved = requests.get(
        f"{provider.url}/v1/accounts/{account['id']}",
        headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
        timeout=10,
    ).json()
    assert retrieved["details_submitted"] is True
    # The same account_link again: the platform's refresh_url, to mint a new one.
    page.goto(account_link["url"])
    assert page.url == platform_site.url + "/refresh"


def test_a_person_opens_the_account_page_and_signs_out_everywhere(
    new_page,  # noqa: F811 - the fixture
    provider: LiveServer,
    platform_site: RelyingPartyServer,
) -> None:
    account = api(provider, "/v1/accounts", type="express")
    onboarding = api(
        provider,
        "/v1/account_links",
        account=account["id"],
        type="account_onboarding",
        refresh_url=platform_site.url + "/refresh",
        return_url=platform_site.url + "/return",
    )
    page = new_page()
    page.goto(onboarding["url"])
    page.get_by_label("Email").fill(JENNY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(provider.console))
    page.get_by_role("button", name="Verify").click()
    # Signed in with Link on this device through an OIDC sign-in at the platform.
    page.goto(
        f"{provider.url}/authorize?response_type=code&client_id=market"
        f"&redirect_uri={platform_site.url}/callback&scope=openid%20email"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    )
    page.get_by_label("Email").fill(JENNY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(provider.console))
    page.get_by_role("button", name="Verify").click()
    assert page.url.startswith(platform_site.url + "/callback?code=")
    login = api(provider, f"/v1/accounts/{account['id']}/login_links")

    page.goto(login["url"])

    assert page.url == provider.url + "/account"
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account at Corner Market")
    expect(page.get_by_text(JENNY)).to_be_visible()
    expect(page.get_by_text("Jenny Rosen")).to_be_visible()
    devices = page.get_by_role("list", name="Where you're signed in").get_by_role("listitem")
    expect(devices).to_have_count(1)
    expect(devices.first).to_contain_text("Chrome")
    expect(page.locator("#sign-out-effect")).to_contain_text(
        "Ends 1 sign-in used only for Corner Market"
    )
    # Chromium posts the page's forms with its real Origin / Sec-Fetch-Site headers: the
    # check on hosted form posts lets them through.
    page.get_by_role("button", name="Sign out of Corner Market everywhere").click()
    expect(page.get_by_role("status")).to_contain_text(
        "signed out of Corner Market on every device"
    )
    expect(
        page.get_by_text("You're not signed in to Corner Market with Link on any device.")
    ).to_be_visible()
    # Update: verify the email again from the account page, and come back to it.
    page.get_by_role("button", name="Update your details").click()
    expect(page.get_by_label("Email")).to_have_value(JENNY)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(provider.console))
    page.get_by_role("button", name="Verify").click()
    assert page.url == provider.url + "/account"
    page.get_by_role("button", name="Close your account page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You've left your account page")
    page.goto(provider.url + "/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account page has closed")


def test_an_account_page_form_on_another_website_is_refused_in_a_real_browser(
    new_page,  # noqa: F811 - the fixture
    provider: LiveServer,
) -> None:
    account = api(provider, "/v1/accounts", type="express")
    page = new_page()
    page.goto(api(provider, f"/v1/accounts/{account['id']}/login_links")["url"])
    csrf_token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    # Another website shows a copy of the page's form, token and all, posting to us.
    forged = (
        f'<form method="post" action="{provider.url}/account/sign-out-everywhere">'
        f'<input type="hidden" name="csrf_token" value="{csrf_token}">'
        "<button>Claim your prize</button></form>"
    )
    page.route(
        "http://attacker.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=forged),
    )
    page.goto("http://attacker.test/prize")

    page.get_by_role("button", name="Claim your prize").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("This form came from another website")
    expect(page.get_by_text("Nothing was changed")).to_be_visible()
