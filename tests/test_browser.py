"""A person in a real browser (headless Chromium) signs in at the demo shop.

Drives the demo's two real HTTP servers through the pages as a user would: by labels and
button names, with JavaScript switched off, since the hosted pages must not need it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from oidc_link.demo import DEMO_EMAIL, RunningDemo, start_demo
from tests.sandbox_console import announced_code

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
def console() -> list[str]:
    return []


@pytest.fixture
def demo(console: list[str]) -> Iterator[RunningDemo]:
    running = start_demo(announce=console.append)
    yield running
    running.stop()


def test_a_person_signs_in_at_the_demo_shop_without_javascript(
    chromium, demo: RunningDemo, console: list[str]
) -> None:
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    assert page.url.startswith(demo.provider_url + "/signin/")
    assert page.get_by_text("Sandbox").first.is_visible()
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Verification code").fill(announced_code(console))
    page.get_by_role("button", name="Verify").click()

    assert page.url.startswith(demo.rp_url)
    body = page.locator("body").inner_text()
    assert DEMO_EMAIL in body
    assert "Jenny Rosen" in body
    context.close()


def test_a_wrong_code_is_announced_and_the_right_one_still_works(
    chromium, demo: RunningDemo, console: list[str]
) -> None:
    context = chromium.new_context()
    page = context.new_page()
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

    assert DEMO_EMAIL in page.locator("body").inner_text()
    assert not [v for v in violations if "Content Security Policy" in v]
    context.close()


def test_an_unknown_email_can_go_back_to_the_shop(chromium, demo: RunningDemo) -> None:
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()

    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_role("button", name="Continue").click()
    assert page.get_by_role("link", name="Sign up for Link").is_visible()
    page.get_by_role("button", name="Back to Demo Shop").click()

    assert page.url.startswith(demo.rp_url)
    assert "access_denied" in page.locator("body").inner_text()
    context.close()
