"""Screenshots of each hosted sign-in page, for reviewers: ``python docs/screenshots/take.py``.

Walks the demo (sandbox, loopback only) in headless Chromium at a phone and a desktop width
and saves viewport PNGs next to this file: every page and state in English, the email and code
pages in each language the demo provider's discovery lists, and a branded shop's pages.
Needs Playwright for Python and /usr/bin/chromium. README.md here lists the files.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Browser, Page, Route, sync_playwright

from oidc_link.demo import DEMO_BRAND, DEMO_EMAIL, RunningDemo, start_demo

HERE = Path(__file__).resolve().parent
SIZES = {"mobile": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
BOTH = ("mobile", "desktop")
MOBILE_ONLY = ("mobile",)
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
# A brand's logo must be https and the demo is loopback http, so the branded shop names a
# logo at a reserved name (RFC 2606) that this script's browser answers itself with
# demo-shop-logo.svg: the page, its CSP and the image's referrer policy are the real ones,
# and no request leaves the machine.
LOGO_URI = "https://demo-shop.example/logo.svg"
LOGO_FILE = HERE / "demo-shop-logo.svg"
# The branded shop: the demo's brand (`oidc-link demo --brand`) with that logo, and a third
# party, so that it asks for consent too.
BRANDED_CLIENT = {**DEMO_BRAND, "logo_uri": LOGO_URI, "third_party": True}
# The sandbox's codes: a wrong one, an expired one, and one that ends the sign-in.
WRONG_CODE, EXPIRED_CODE, LOCKING_CODE = "000001", "000002", "000003"


@dataclass
class Visit:
    """One fresh tab at the demo, the sandbox console (where the codes appear) and the
    ``ui_locales`` the shop's login link asks for."""

    page: Page
    demo: RunningDemo
    console: list[str]
    ui_locales: str | None = None


@dataclass(frozen=True)
class Shot:
    """Do ``act`` to the tab, then save it as ``<name>-<size>.png`` at each of ``sizes``."""

    name: str
    act: Callable[[Visit], None]
    sizes: tuple[str, ...] = BOTH

    @property
    def files(self) -> list[str]:
        return [f"{self.name}-{size}.png" for size in self.sizes]


@dataclass(frozen=True)
class Walk:
    """Shots taken one after the other in one fresh browser context (no cookies).

    ``locale`` is the browser's language (its Accept-Language), ``ui_locales`` what the
    shop's login link asks for; a ``branded`` walk runs at the branded shop."""

    shots: tuple[Shot, ...]
    locale: str = "en-US"
    ui_locales: str | None = None
    color_scheme: str = "light"
    branded: bool = False

    @property
    def files(self) -> list[str]:
        return [file for shot in self.shots for file in shot.files]


# What a shot does before it is taken. The forms are found by what they post to, not by
# their labels, so that the same steps work in every language.


def open_sign_in(visit: Visit) -> None:
    """The shop's "Log in with Link", or its login link with ``?ui_locales=``."""
    if visit.ui_locales is None:
        visit.page.goto(visit.demo.rp_url)
        visit.page.locator('a[href$="/login"]').click()
    else:
        visit.page.goto(f"{visit.demo.rp_url}/login?ui_locales={quote(visit.ui_locales)}")


def submit(visit: Visit, step: str, **fields: str) -> None:
    """Fill in and send the page's form that posts to ``<flow>/<step>``."""
    form = visit.page.locator(f'form[action$="/{step}"]')
    for name, value in fields.items():
        form.locator(f'input[name="{name}"]').fill(value)
    form.locator('button[type="submit"]').click()


def email(address: str) -> Callable[[Visit], None]:
    return lambda visit: submit(visit, "email", email=address)


def code(digits: str) -> Callable[[Visit], None]:
    return lambda visit: submit(visit, "code", code=digits)


def to_code_page(visit: Visit) -> None:
    open_sign_in(visit)
    submit(visit, "email", email=DEMO_EMAIL)


def the_console_code(visit: Visit) -> None:
    """The code the sandbox announced last, as a person reads it off the console."""
    match = re.search(r"\b(\d{6})$", visit.console[-1])
    assert match is not None, visit.console[-1]
    submit(visit, "code", code=match.group(1))


def finish_then_go_back(visit: Visit) -> None:
    """Sign in, then press Back: the calm "You're done here" page."""
    to_code_page(visit)
    the_console_code(visit)
    visit.page.wait_for_url(visit.demo.rp_url + "/")
    visit.page.go_back()


def not_on_link(visit: Visit) -> None:
    open_sign_in(visit)
    submit(visit, "email", email="nobody@example.com")


def locked(visit: Visit) -> None:
    to_code_page(visit)
    submit(visit, "code", code=LOCKING_CODE)


def unknown_client(visit: Visit) -> None:
    visit.page.goto(
        visit.demo.provider_url + "/authorize?client_id=nope&response_type=code&scope=openid"
        "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s"
    )


def wrong_code(visit: Visit) -> None:
    to_code_page(visit)
    submit(visit, "code", code=WRONG_CODE)


def resend(visit: Visit) -> None:
    submit(visit, "resend")


# The shots, in the order they are taken.

PAGES = (
    Walk(
        (
            Shot("01-email", open_sign_in),
            Shot("02-email-invalid", email("jenny@example")),  # the browser accepts it, we do not
            Shot("03-code", email(DEMO_EMAIL)),
            Shot("04-code-wrong", code(WRONG_CODE)),
            Shot("05-code-expired", code(EXPIRED_CODE), MOBILE_ONLY),
            Shot("06-code-resend-too-soon", resend, MOBILE_ONLY),
        )
    ),
    Walk((Shot("07-finished", finish_then_go_back),)),
    Walk((Shot("08-not-on-link", not_on_link),)),
    Walk((Shot("09-locked", locked),)),
    Walk((Shot("10-error-unknown-client", unknown_client),)),
    Walk((Shot("11-code-wrong-dark", wrong_code, MOBILE_ONLY),), color_scheme="dark"),
)

BRANDED = (
    Walk(
        (
            Shot("branded-01-email", open_sign_in),
            Shot("branded-03-code", email(DEMO_EMAIL)),
            Shot("branded-12-consent", the_console_code),
        ),
        branded=True,
    ),
    Walk(
        (Shot("branded-01-email-dark", open_sign_in, MOBILE_ONLY),),
        color_scheme="dark",
        branded=True,
    ),
)


def language_walk(locale: str) -> Walk:
    """The email and code pages in ``locale``, asked for by ui_locales and Accept-Language."""
    return Walk(
        (
            Shot(f"lang-{locale}-01-email", open_sign_in, MOBILE_ONLY),
            Shot(f"lang-{locale}-03-code", email(DEMO_EMAIL), MOBILE_ONLY),
        ),
        locale=locale,
        ui_locales=locale,
    )


def plan(locales: Sequence[str]) -> list[Walk]:
    """Every walk, for the languages the provider lists: the plain shop's, then the branded."""
    return [*PAGES, *(language_walk(locale) for locale in locales), *BRANDED]


def planned_files(walks: Iterable[Walk]) -> list[str]:
    return [file for walk in walks for file in walk.files]


def remove_stale(folder: Path, kept: Iterable[str]) -> list[Path]:
    """Delete the PNGs in ``folder`` this run did not save (a language no longer listed, a
    renamed shot); the others are left alone."""
    stale = sorted(path for path in folder.glob("*.png") if path.name not in set(kept))
    for path in stale:
        path.unlink()
    return stale


def discovered_locales(demo: RunningDemo) -> list[str]:
    """The provider's ``ui_locales_supported``, from its discovery document."""
    url = demo.provider_url + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the demo's loopback URL
        return list(json.load(answer)["ui_locales_supported"])


def languages_without_a_font(locales: Iterable[str]) -> list[str]:
    """The locales no installed font can write (fontconfig's ``fc-list :lang=``), whose
    shots would show empty boxes; none when fontconfig cannot be asked."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    missing = []
    for locale in locales:
        language = locale.split("-")[0].lower()
        fonts = subprocess.run(  # noqa: S603 - a fixed program, a language subtag we split off
            [fc_list, f":lang={language}", "family"], capture_output=True, text=True, check=False
        )
        if not fonts.stdout.strip():
            missing.append(locale)
    return missing


def take_walk(
    browser: Browser, demo: RunningDemo, console: list[str], walk: Walk, out: Path
) -> None:
    """Take one walk's shots into ``out``, in a browser context of its own."""
    context = browser.new_context(
        java_script_enabled=False,
        viewport=SIZES["mobile"],
        device_scale_factor=1,
        locale=walk.locale,
        color_scheme=walk.color_scheme,
    )
    try:
        context.route(LOGO_URI, serve_logo)
        visit = Visit(context.new_page(), demo, console, walk.ui_locales)
        for shot in walk.shots:
            shot.act(visit)
            snap(visit.page, shot, out)
    finally:
        context.close()


def serve_logo(route: Route) -> None:
    route.fulfill(status=200, content_type="image/svg+xml", body=LOGO_FILE.read_bytes())


def snap(page: Page, shot: Shot, out: Path) -> None:
    """Save the tab at each of the shot's sizes, then return it to the phone's."""
    page.wait_for_load_state()
    for size, file in zip(shot.sizes, shot.files, strict=True):
        page.set_viewport_size(SIZES[size])
        page.wait_for_timeout(200)  # let the resized page paint before the capture
        page.screenshot(path=str(out / file), animations="disabled")
        print(f"saved {file}")
    page.set_viewport_size(SIZES["mobile"])


def take(browser: Browser, out: Path) -> list[str]:
    """Every planned shot into ``out``, at the plain demo then the branded one; the files
    saved."""
    saved: list[str] = []
    for branded in (False, True):
        console: list[str] = []
        demo = start_demo(
            announce=console.append, client_options=BRANDED_CLIENT if branded else None
        )
        try:
            locales = discovered_locales(demo)
            if missing := languages_without_a_font(locales):
                raise MissingFontError(missing)
            for walk in plan(locales):
                if walk.branded == branded:
                    take_walk(browser, demo, console, walk, out)
                    saved.extend(walk.files)
        finally:
            demo.stop()
    return saved


class MissingFontError(Exception):
    """The machine has no font for some languages the provider lists."""

    def __init__(self, locales: list[str]) -> None:
        super().__init__(
            f"No font writes {', '.join(locales)} here, so those shots would show empty boxes. "
            "Install one (Debian: apt-get install fonts-ipafont-gothic for Japanese) and rerun."
        )


def main() -> int:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("Chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    # One line per request would bury the list of saved files; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            saved = take(browser, HERE)
        except MissingFontError as error:
            print(error, file=sys.stderr)
            return 1
        finally:
            browser.close()
    for path in remove_stale(HERE, saved):
        print(f"removed {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
