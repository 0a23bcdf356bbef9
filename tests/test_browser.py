"""A person in a real browser (headless Chromium) signs in at the demo shop.

Drives the demo's two real HTTP servers through the pages as a user would: by labels and
button names, with JavaScript switched off, since the hosted pages must not need it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from oidc_link.demo import DEMO_EMAIL, RunningDemo, start_demo
from tests.sandbox_console import announced_code, wrong_code_for

playwright_api = pytest.importorskip("playwright.sync_api")

# CI sets this so that a missing Chromium fails the run instead of skipping these tests.
REQUIRE_BROWSER = os.environ.get("OIDC_LINK_TEST_BROWSER") == "required"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if REQUIRE_BROWSER:
            pytest.fail("Chromium is required (OIDC_LINK_TEST_BROWSER=required)")
        pytest.skip("Chromium is not installed; CI installs it")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(chromium) -> Iterator[Callable[..., object]]:
    """Pages in fresh browser contexts (no shared cookies), closed after the test."""
    contexts: list[object] = []

    def open_page(javascript: bool = False, locale: str | None = None) -> object:
        # ``locale`` sets the browser's language, which it sends as Accept-Language.
        context = chromium.new_context(java_script_enabled=javascript, locale=locale)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def console() -> list[str]:
    return []


@pytest.fixture
def demo(console: list[str]) -> Iterator[RunningDemo]:
    running = start_demo(announce=console.append)
    yield running
    running.stop()


def test_a_person_signs_in_at_the_demo_shop_without_javascript(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    # The email page is the answer to /authorize itself: no redirect to another address.
    assert page.url.startswith(demo.provider_url + "/authorize?")
    playwright_api.expect(page.get_by_text("Sandbox").first).to_be_visible()
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(console))
    page.get_by_role("button", name="Verify").click()

    assert page.url.startswith(demo.rp_url)
    body = _body(page)
    assert DEMO_EMAIL in body
    assert "Jenny Rosen" in body


def test_a_person_whose_browser_speaks_german_signs_in_in_german(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    """The demo shop names no ui_locales: the browser's Accept-Language picks German for
    every page, with "E-Mail" and "Code" as German sign-in pages say them."""
    page = new_page(locale="de-DE")

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    assert page.locator("html").get_attribute("lang") == "de"
    playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text(
        "Bei Demo Shop anmelden"
    )
    page.get_by_label("E-Mail").fill("nobody@example.com")
    page.get_by_role("button", name="Weiter").click()
    playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text(
        "nobody@example.com ist noch nicht bei Link"
    )
    page.get_by_role("button", name="Andere E-Mail-Adresse verwenden").click()
    page.get_by_label("E-Mail").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Weiter").click()
    playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text("Code eingeben")
    page.get_by_label("Bestätigungscode").fill(announced_code(console))
    page.get_by_role("button", name="Bestätigen").click()

    assert page.url.startswith(demo.rp_url)
    assert DEMO_EMAIL in _body(page)


def test_an_arabic_page_is_laid_out_right_to_left(new_page, demo: RunningDemo) -> None:
    page = new_page(locale="ar")

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    # The email page with its error (what an address Link refuses shows).
    flow_page = _email_form_action(page).removesuffix("/email")
    page.goto(demo.provider_url + flow_page + "?notice=invalid_email")

    assert page.locator("html").get_attribute("dir") == "rtl"
    card = page.locator("main").bounding_box()
    field = page.get_by_label("البريد الإلكتروني").bounding_box()
    heading = page.get_by_role("heading", level=1)
    # Text starts at the card's right edge, and the error's bar is on that side too.
    title = heading.bounding_box()
    assert card["x"] + card["width"] - (title["x"] + title["width"]) < card["width"] / 4
    assert field["width"] > 0
    bar = page.locator(".error-message").evaluate("e => getComputedStyle(e).borderRightWidth")
    assert bar == "4px"


def test_a_wrong_code_is_announced_and_the_right_one_still_works(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page(javascript=True)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill("000001")
    page.get_by_role("button", name="Verify").click()

    alert = page.get_by_role("alert")
    assert "not right" in alert.inner_text()
    assert page.get_by_label("Verification code").get_attribute("aria-invalid") == "true"
    page.get_by_label("Verification code").fill("000000")
    page.get_by_role("button", name="Verify").click()

    assert DEMO_EMAIL in _body(page)
    assert not [v for v in violations if "Content Security Policy" in v]


def test_an_unknown_email_can_go_back_to_the_shop(new_page, demo: RunningDemo) -> None:
    page = new_page()

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_role("button", name="Continue").click()
    playwright_api.expect(page.get_by_role("link", name="Sign up for Link")).to_be_visible()
    page.get_by_role("button", name="Back to Demo Shop").click()

    assert page.url.startswith(demo.rp_url)
    assert "access_denied" in _body(page)


# Helpers: the steps every branch shares, taken as a person would.


def _open_sign_in(page, demo: RunningDemo) -> None:
    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    assert page.url.startswith(demo.provider_url + "/authorize?")
    playwright_api.expect(page.get_by_role("heading", name="Sign in to Demo Shop")).to_be_visible()


def _email_form_action(page) -> str:
    return page.locator("form:has(input[name=email])").get_attribute("action")


def _reach_code_page(page, demo: RunningDemo, console: list[str]) -> str:
    """From the shop to the code page for the demo user; returns the code the sandbox sent."""
    _open_sign_in(page, demo)
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    playwright_api.expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    return announced_code(console)


def _posted_to(step: str):
    """A response predicate: the answer to the form POST of one sign-in step."""
    return lambda response: response.request.method == "POST" and response.url.endswith(f"/{step}")


def _body(page) -> str:
    page.wait_for_load_state()
    return page.locator("body").inner_text()


def _is_signed_in_at_shop(page, demo: RunningDemo) -> bool:
    return page.url.startswith(demo.rp_url) and "Signed in as" in _body(page)


def test_reloading_the_email_page_keeps_the_same_sign_in_which_then_completes(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    _open_sign_in(page, demo)
    action = _email_form_action(page)
    assert action.startswith("/signin/flow_") and action.endswith("/email")

    again = page.reload()

    assert again is not None and again.status == 200
    assert page.url.startswith(demo.provider_url + "/authorize?")
    assert _email_form_action(page) == action  # the same flow, not a second one
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(console))
    page.get_by_role("button", name="Verify").click()
    assert _is_signed_in_at_shop(page, demo)
    assert len(console) == 1


def test_back_from_the_code_page_shows_the_code_page_again_and_sends_no_second_sms(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    code = _reach_code_page(page, demo, console)
    assert page.url.startswith(demo.provider_url + "/signin/flow_")

    page.go_back()

    # Back at the /authorize address, which shows where this browser's sign-in stands.
    assert page.url.startswith(demo.provider_url + "/authorize?")
    playwright_api.expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.reload()
    playwright_api.expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify").click()
    assert _is_signed_in_at_shop(page, demo)
    assert len(console) == 1


def test_five_wrong_codes_end_the_sign_in_and_lead_back_to_the_shop(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    wrong = wrong_code_for(_reach_code_page(page, demo, console))

    for tries_left in (4, 3, 2, 1):
        page.get_by_label("Verification code").fill(wrong)
        with page.expect_navigation() as answer:
            page.get_by_role("button", name="Verify").click()
        assert answer.value.status == 400  # the page the POST redirects to
        message = page.get_by_role("alert").inner_text()
        assert "not right" in message
        assert f"try {tries_left} more time" in message
        assert page.get_by_label("Verification code").get_attribute("aria-invalid") == "true"

    page.get_by_label("Verification code").fill(wrong)
    with page.expect_navigation() as answer:
        page.get_by_role("button", name="Verify").click()
    assert answer.value.status == 400  # the page the POST redirects to
    playwright_api.expect(
        page.get_by_role("heading", name="This sign-in has ended")
    ).to_be_visible()
    assert "Too many wrong codes" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Verification code").count() == 0

    page.get_by_role("button", name="Back to Demo Shop").click()
    assert page.url.startswith(demo.rp_url)
    assert "access_denied" in _body(page)
    assert len(console) == 1


def test_someone_not_on_link_can_use_another_email_and_then_sign_in(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()

    _open_sign_in(page, demo)
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_role("button", name="Continue").click()
    playwright_api.expect(
        page.get_by_role("heading", name="nobody@example.com isn't on Link yet")
    ).to_be_visible()
    signup = page.get_by_role("link", name="Sign up for Link")
    assert signup.get_attribute("href") == "https://link.com/"
    assert console == []  # nobody to text

    page.get_by_role("button", name="Use another email").click()
    playwright_api.expect(page.get_by_role("heading", name="Sign in to Demo Shop")).to_be_visible()
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(console))
    page.get_by_role("button", name="Verify").click()

    assert _is_signed_in_at_shop(page, demo)
    assert DEMO_EMAIL in _body(page)


def test_going_back_to_the_shop_from_the_email_page_tells_the_shop_access_was_denied(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()

    _open_sign_in(page, demo)
    page.get_by_role("button", name="Back to Demo Shop").click()

    assert page.url.startswith(demo.rp_url)
    assert "access_denied" in page.get_by_role("alert").inner_text()
    assert console == []


def test_asking_for_a_new_code_right_away_says_to_wait_and_stays_on_the_code_page(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    code = _reach_code_page(page, demo, console)

    with page.expect_navigation() as answer:
        page.get_by_role("button", name="Send a new code").click()

    assert answer.value.status == 429  # the page the POST redirects to
    playwright_api.expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    assert "A code is on its way" in page.get_by_role("alert").inner_text()
    assert len(console) == 1  # no second SMS
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify").click()
    assert _is_signed_in_at_shop(page, demo)


def test_an_expired_code_says_so_and_offers_a_new_one(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    _reach_code_page(page, demo, console)

    page.get_by_label("Verification code").fill("000002")  # the sandbox's "expired" code
    with page.expect_navigation() as answer:
        page.get_by_role("button", name="Verify").click()

    assert answer.value.status == 400  # the page the POST redirects to
    assert "That code has expired" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Verification code").get_attribute("aria-invalid") == "true"
    playwright_api.expect(page.get_by_role("button", name="Send a new code")).to_be_visible()


def _click_twice_while_the_first_is_on_its_way(page, button: str, step: str):
    """Click a submit button, then again before its answer arrives; the second POST's response.

    Chromium folds two instant clicks into one POST, so this plays a slow network instead:
    the first POST reaches the server but its answer is held back, and the person clicks
    again, which makes the browser drop the first navigation and send the form once more.
    """
    first_answers: list[object] = []

    def hold_back_first_answer(route) -> None:
        if first_answers:
            route.continue_()
        else:
            first_answers.append(route.fetch(max_redirects=0))

    page.route(f"**/signin/*/{step}", hold_back_first_answer)
    box = page.get_by_role("button", name=button).bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # Low-level clicks: locator clicks would wait for the held navigation to finish.
    page.mouse.click(x, y)
    for _ in range(200):
        if first_answers:
            break
        page.wait_for_timeout(25)
    assert first_answers, "the first submit never reached the server"
    with page.expect_response(_posted_to(step)) as second:
        page.mouse.click(x, y)
    page.unroute(f"**/signin/*/{step}")
    return first_answers[0], second.value


@pytest.mark.parametrize("javascript", [False, True], ids=["without-js", "with-js"])
def test_submitting_the_email_twice_sends_one_code(
    new_page, demo: RunningDemo, console: list[str], javascript: bool
) -> None:
    page = new_page(javascript=javascript)
    errors: list[str] = []
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
    _open_sign_in(page, demo)
    page.get_by_label("Email").fill(DEMO_EMAIL)

    first, second = _click_twice_while_the_first_is_on_its_way(page, "Continue", "email")

    assert (first.status, second.status) == (303, 303)
    page.get_by_role("heading", name="Enter your code").wait_for()
    assert len(console) == 1
    assert errors == []
    page.get_by_label("Verification code").fill(announced_code(console))
    page.get_by_role("button", name="Verify").click()
    assert _is_signed_in_at_shop(page, demo)


@pytest.mark.parametrize("javascript", [False, True], ids=["without-js", "with-js"])
def test_submitting_the_code_twice_lands_where_the_first_submit_went(
    new_page, demo: RunningDemo, console: list[str], javascript: bool
) -> None:
    page = new_page(javascript=javascript)
    errors: list[str] = []
    page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
    code = _reach_code_page(page, demo, console)
    page.get_by_label("Verification code").fill(code)

    first, second = _click_twice_while_the_first_is_on_its_way(page, "Verify", "code")

    assert first.status == 302  # the first submit finished the sign-in
    assert second.status == 303  # the second is sent where the first went
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["location"].startswith(demo.rp_url + "/callback?code=")
    page.wait_for_url(demo.rp_url + "/")
    assert _is_signed_in_at_shop(page, demo)
    assert DEMO_EMAIL in _body(page)
    assert errors == []
    assert len(console) == 1


def test_the_back_button_after_signing_in_shows_a_calm_page_with_the_way_back(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    code = _reach_code_page(page, demo, console)
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify").click()
    assert _is_signed_in_at_shop(page, demo)

    back = page.go_back()
    assert page.url.startswith(demo.provider_url + "/signin/")
    assert back is None or back.status == 200
    playwright_api.expect(page.get_by_role("heading", name="You're done here")).to_be_visible()
    assert "error" not in page.title().lower()

    again = page.reload()
    assert again is not None and again.status == 200
    playwright_api.expect(page.get_by_role("heading", name="You're done here")).to_be_visible()

    page.get_by_role("link", name="Back to Demo Shop").click()
    assert _is_signed_in_at_shop(page, demo)
    assert len(console) == 1


def test_the_back_button_after_a_wrong_code_and_then_signing_in_shows_the_calm_page(
    new_page, demo: RunningDemo, console: list[str]
) -> None:
    page = new_page()
    code = _reach_code_page(page, demo, console)
    page.get_by_label("Verification code").fill(wrong_code_for(code))
    page.get_by_role("button", name="Verify").click()
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify").click()
    assert _is_signed_in_at_shop(page, demo)

    page.go_back()
    playwright_api.expect(page.get_by_role("heading", name="You're done here")).to_be_visible()
    page.reload()
    playwright_api.expect(page.get_by_role("heading", name="You're done here")).to_be_visible()
