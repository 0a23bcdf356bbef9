"""The OIDF RP-Initiated Logout OP plan (``oidcc-rp-initiated-logout-certification-test-plan``).

Each module (AbstractOIDCCRpInitiatedLogout) signs the user in with a normal code flow, sends
the browser to the ``end_session_endpoint`` with ``id_token_hint``, the registered
``post_logout_redirect_uri`` and a long ``state``, each module leaving something out or
spoiling it, and then checks where the browser ends up. The plan's static client registers
``post_logout_redirect_uri`` (tests/conformance/conftest.py).

Every test runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from werkzeug.test import TestResponse

from tests.conformance.suite import (
    DISCOVERY_URL,
    SHOP_POST_LOGOUT,
    USER_INTERFACE_ERRORS,
    CodeFlowResult,
    SuiteClient,
    random_value,
    with_alg_none,
)
from tests.relying_party import Browser, query_of


def end_session_request(signed_in: CodeFlowResult, **changes: str | None) -> dict[str, str]:
    """CreateEndSessionEndpointRequest: hint, registered redirect URI, a 128-character state.

    A parameter given as None is left out (Remove...FromEndSessionEndpointRequest).
    """
    request = {
        "id_token_hint": signed_in.tokens["id_token"],
        "post_logout_redirect_uri": SHOP_POST_LOGOUT,
        "state": random_value(128),
    }
    for name, value in changes.items():
        if value is None:
            request.pop(name, None)
        else:
            request[name] = value
    return request


def go_to_end_session(client: SuiteClient, browser: Browser, request: dict[str, str]):
    """BuildRedirectToEndSessionEndpoint, and the browser follows it."""
    endpoint = urlsplit(client.server["end_session_endpoint"])
    path = endpoint.path + ("?" + urlencode(request) if request else "")
    return browser.get(path)


def confirmation_form(browser: Browser):
    """The "do you want to sign out?" form, if the page is one."""
    return browser.soup().find("form", action=re.compile(r"/logout/"))


def confirm_sign_out(browser: Browser) -> TestResponse:
    """The user answers the confirmation page: yes, sign me out."""
    form = confirmation_form(browser)
    assert form is not None, "expected a logout confirmation page"
    return browser.submit(form["action"], choice="sign_out")


def assert_no_redirect_back(client: SuiteClient, browser: Browser, answer: TestResponse) -> None:
    """The OP must not redirect back, and must show an error or ask the user (OIDCRIL §2-3):
    an error page (and the refused request changed nothing), or a confirmation whose "yes"
    logs out and still does not go back."""
    assert "Location" not in answer.headers
    assert answer.mimetype == "text/html"
    if confirmation_form(browser) is None:
        assert answer.status_code == 400  # the error page
        assert_still_logged_in(client, browser)
        return
    assert answer.status_code == 200
    assert "Location" not in confirm_sign_out(browser).headers
    assert_logged_out(client, browser)


def assert_successful_logout_page(browser: Browser, answer: TestResponse) -> None:
    """ExpectSuccessfulLogoutPage: our own "signed out" page, possibly after a confirmation,
    and no redirect to the registered post_logout_redirect_uri."""
    if confirmation_form(browser) is not None:
        answer = confirm_sign_out(browser)
    assert answer.status_code == 200
    assert "Location" not in answer.headers
    assert "signed out" in browser.soup().get_text().lower()


def assert_logged_out(client: SuiteClient, browser: Browser) -> None:
    """The plan's second authorization: prompt=none must now need a user interface."""
    request = client.authorization_request(prompt="none")
    answer = client.authorize(browser, request)
    assert client.authorization_error(answer, request) in USER_INTERFACE_ERRORS


def assert_still_logged_in(client: SuiteClient, browser: Browser) -> None:
    request = client.authorization_request(prompt="none")
    answer = client.authorize(browser, request)
    assert "code" in client.callback(answer.headers["Location"], request)


def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(
    client: SuiteClient,
) -> None:
    """Discovery has an https end_session_endpoint; every endpoint is https."""
    # Spec: RP-Initiated Logout §2.1.
    server = client.fetch(DISCOVERY_URL).get_json()

    assert server["end_session_endpoint"].startswith("https://")
    for field, value in server.items():
        if field.endswith("_endpoint") or field == "jwks_uri":
            assert value.startswith("https://"), field


def test_oidcc_rp_initiated_logout(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """Logout redirects to the registered URI with state only; prompt=none then fails."""
    # Spec: RP-Initiated Logout §2, §3.
    signed_in = client.code_flow(browser, console)
    request = end_session_request(signed_in)

    answer = go_to_end_session(client, browser, request)
    if confirmation_form(browser) is not None:
        answer = confirm_sign_out(browser)

    assert answer.status_code in (302, 303)
    location = answer.headers["Location"]
    assert location.split("?")[0] == SHOP_POST_LOGOUT
    # CheckPostLogoutState, CheckForUnexpectedParametersInPostLogoutRedirect (OIDCRIL §2, §3)
    assert query_of(location) == {"state": request["state"]}
    assert_logged_out(client, browser)


def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """An unregistered post_logout_redirect_uri is never redirected to."""
    # Spec: RP-Initiated Logout §3.
    signed_in = client.code_flow(browser, console)
    bad = "https://shop.example.test/" + random_value(10) + "/post_logout_redirect"
    request = end_session_request(signed_in, post_logout_redirect_uri=bad)

    answer = go_to_end_session(client, browser, request)

    assert_no_redirect_back(client, browser, answer)


def test_oidcc_rp_initiated_logout_modified_id_token_hint(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """An id_token_hint changed to alg none: no redirect back."""
    # Spec: RP-Initiated Logout §2.
    signed_in = client.code_flow(browser, console)
    request = end_session_request(signed_in)
    request["id_token_hint"] = with_alg_none(request["id_token_hint"])  # ChangeIdTokenToAlgNone

    answer = go_to_end_session(client, browser, request)

    assert_no_redirect_back(client, browser, answer)


def test_oidcc_rp_initiated_logout_no_id_token_hint(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """post_logout_redirect_uri without id_token_hint: no redirect back."""
    # Spec: RP-Initiated Logout §3.
    signed_in = client.code_flow(browser, console)
    request = end_session_request(signed_in, id_token_hint=None)

    answer = go_to_end_session(client, browser, request)

    assert_no_redirect_back(client, browser, answer)


def test_oidcc_rp_initiated_logout_no_params(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """No parameters: the user is logged out and sees our signed-out page."""
    # Spec: RP-Initiated Logout §2.
    client.code_flow(browser, console)

    answer = go_to_end_session(client, browser, {})

    assert_successful_logout_page(browser, answer)
    assert_logged_out(client, browser)


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """No post_logout_redirect_uri: logged out, our own page, no redirect."""
    # Spec: RP-Initiated Logout §3.
    signed_in = client.code_flow(browser, console)
    request = end_session_request(signed_in, post_logout_redirect_uri=None)

    answer = go_to_end_session(client, browser, request)

    assert_successful_logout_page(browser, answer)
    assert_logged_out(client, browser)


def test_oidcc_rp_initiated_logout_no_state(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """No state: redirected to the registered URI without state; prompt=none then fails."""
    # Spec: RP-Initiated Logout §3.
    signed_in = client.code_flow(browser, console)
    request = end_session_request(signed_in, state=None)

    answer = go_to_end_session(client, browser, request)
    if confirmation_form(browser) is not None:
        answer = confirm_sign_out(browser)

    assert answer.status_code in (302, 303)
    assert answer.headers["Location"] == SHOP_POST_LOGOUT
    assert_logged_out(client, browser)


def test_oidcc_rp_initiated_logout_only_state(
    client: SuiteClient, browser: Browser, console: list[str]
) -> None:
    """Only state: logged out, our signed-out page, no redirect."""
    # Spec: RP-Initiated Logout §2.
    signed_in = client.code_flow(browser, console)
    request = end_session_request(signed_in, id_token_hint=None, post_logout_redirect_uri=None)

    answer = go_to_end_session(client, browser, request)

    assert_successful_logout_page(browser, answer)
    assert_logged_out(client, browser)
