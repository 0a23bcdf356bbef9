"""Screenshots of each hosted sign-in page, for reviewers: ``python docs/screenshots/take.py``.

Walks the demo (sandbox, loopback only) in headless Chromium at a phone and a desktop width
and saves viewport PNGs next to this file. Needs Playwright for Python and /usr/bin/chromium.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from oidc_link.demo import DEMO_EMAIL, RunningDemo, start_demo

HERE = Path(__file__).resolve().parent
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# The same flags as tests/test_browser.py: no sandbox (containers), no network but loopback.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def snap(page: Page, name: str, *, desktop: bool = True) -> None:
    """Save ``name-mobile.png`` and, unless told otherwise, ``name-desktop.png``."""
    page.wait_for_load_state()
    sizes = [("mobile", MOBILE)] + ([("desktop", DESKTOP)] if desktop else [])
    for label, size in sizes:
        page.set_viewport_size(size)
        page.wait_for_timeout(200)  # let the resized page paint before the capture
        path = HERE / f"{name}-{label}.png"
        page.screenshot(path=str(path), animations="disabled")
        print(f"saved {path.relative_to(HERE.parent.parent)}")
    page.set_viewport_size(MOBILE)


def last_code(console: list[str]) -> str:
    match = re.search(r"\b(\d{6})$", console[-1])
    assert match is not None, console[-1]
    return match.group(1)


def open_sign_in(page: Page, demo: RunningDemo) -> None:
    page.goto(demo.rp_url)
    page.get_by_role("link", name="Log in with Link").click()


def to_code_page(page: Page, demo: RunningDemo) -> None:
    open_sign_in(page, demo)
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()


def take(demo: RunningDemo, console: list[str], browser) -> None:
    def fresh_page(**options) -> Page:
        context = browser.new_context(
            java_script_enabled=False, viewport=MOBILE, device_scale_factor=1, **options
        )
        return context.new_page()

    page = fresh_page()
    open_sign_in(page, demo)
    snap(page, "01-email")
    page.get_by_label("Email").fill("jenny@example")  # the browser accepts it, we do not
    page.get_by_role("button", name="Continue").click()
    snap(page, "02-email-invalid")

    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_role("button", name="Continue").click()
    snap(page, "03-code")
    page.get_by_label("Verification code").fill("000001")  # the sandbox's wrong code
    page.get_by_role("button", name="Verify").click()
    snap(page, "04-code-wrong")
    page.get_by_label("Verification code").fill("000002")  # the sandbox's expired code
    page.get_by_role("button", name="Verify").click()
    snap(page, "05-code-expired", desktop=False)
    page.get_by_role("button", name="Send a new code").click()
    snap(page, "06-code-resend-too-soon", desktop=False)

    page = fresh_page()
    to_code_page(page, demo)
    page.get_by_label("Verification code").fill(last_code(console))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(demo.rp_url + "/")
    page.go_back()  # after finishing: the calm "You're done here" page
    snap(page, "07-finished")

    page = fresh_page()
    open_sign_in(page, demo)
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_role("button", name="Continue").click()
    snap(page, "08-not-on-link")

    page = fresh_page()
    to_code_page(page, demo)
    page.get_by_label("Verification code").fill("000003")  # the sandbox's "too many" code
    page.get_by_role("button", name="Verify").click()
    snap(page, "09-locked")

    page = fresh_page()
    page.goto(
        demo.provider_url + "/authorize?client_id=nope&response_type=code&scope=openid"
        "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s"
    )
    snap(page, "10-error-unknown-client")

    page = fresh_page(color_scheme="dark")
    to_code_page(page, demo)
    page.get_by_label("Verification code").fill("000001")
    page.get_by_role("button", name="Verify").click()
    snap(page, "11-code-wrong-dark", desktop=False)


def main() -> int:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("Chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    for old in HERE.glob("*.png"):
        old.unlink()
    console: list[str] = []
    demo = start_demo(announce=console.append)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            try:
                take(demo, console, browser)
            finally:
                browser.close()
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
