"""The hosted pages checked for accessibility in a real browser (headless Chromium).

One walk per language that discovery lists takes a page through every hosted page in every
state; on each, axe-core (pinned by tests/a11y/package-lock.json) runs the WCAG 2.2 A and AA
rules in light and dark, and the page must reflow at 320 px and at 200 % zoom and keep still
for a person who asked for less motion. Then a person signs in by keyboard alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import fakeredis
import pytest
import requests

from oidc_link import create_app
from oidc_link.config import settings_from_mapping
from oidc_link.ids import digest
from oidc_link.services import build_services
from tests.conftest import JENNY, SHOP_SECRET, provider_config
from tests.live_server import (
    LiveServer,
    RelyingPartyServer,
    start_live_server,
    start_relying_party_server,
)
from tests.relying_party import PKCE
from tests.sandbox_console import announced_code, wrong_code_for
from tests.test_browser import REQUIRE_BROWSER, chromium, playwright_api  # noqa: F401 - fixture

AXE_SCRIPT = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: the tags axe-core gives those success criteria.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PLATFORM_KEY = "sk_test_a11y_platform_Qm7Vx2Lp9Rt4Wz8Nc3Jd"
SHOP = "a11y-shop"
PARTNER = "a11y-partner"
DESKTOP = {"width": 1280, "height": 800}
NARROW = {"width": 320, "height": 640}
# Browser zoom at 200 % halves the CSS viewport and doubles the pixels per CSS pixel: a
# 1280 x 800 window shows the page as a 640 x 400 one drawn at a device scale factor of 2.
ZOOMED = {"width": 640, "height": 400}


def _listed_locales() -> list[str]:
    """The locales discovery lists (``ui_locales_supported``), asked of the app itself."""
    settings = settings_from_mapping(provider_config(), {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(settings, redis_client=fakeredis.FakeRedis(decode_responses=True))
    client = create_app(settings, services).test_client()
    return list(client.get("/.well-known/openid-configuration").json["ui_locales_supported"])


LOCALES = _listed_locales()


@dataclass(frozen=True)
class Sites:
    """The provider with a first-party shop (a platform with an API key too) and a
    third-party partner, and the relying party's pages they send the browser back to."""

    provider: LiveServer
    relying_party: RelyingPartyServer
    accounts: list[str] = field(default_factory=list)

    def authorization_url(self, client_id: str, locale: str, **extra: str) -> str:
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": self.relying_party.url + "/callback",
            "scope": "openid email profile",
            "state": "a11y-state",
            "ui_locales": locale,
            **PKCE,
            **extra,
        }
        return f"{self.provider.url}/authorize?{urlencode(query)}"

    def api(self, path: str, **params: str) -> dict:
        response = requests.post(
            self.provider.url + path,
            data=params,
            headers={"Authorization": f"Bearer {PLATFORM_KEY}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def platform_account(self) -> str:
        """Jenny's account at the platform, made once: each language onboards it again."""
        if not self.accounts:
            self.accounts.append(self.api("/v1/accounts", type="express", email=JENNY)["id"])
        return self.accounts[0]

    @property
    def code(self) -> str:
        return announced_code(self.provider.console)


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_SCRIPT.exists():
        if REQUIRE_BROWSER:
            pytest.fail("axe-core is required: (cd tests/a11y && npm ci)")
        pytest.skip("axe-core is not installed: (cd tests/a11y && npm ci); CI installs it")
    return AXE_SCRIPT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sites() -> Iterator[Sites]:
    relying_party = start_relying_party_server()
    clients = [
        {
            "client_id": SHOP,
            "client_secret": "a11y-shop-secret-0123456789abcdef",
            "redirect_uris": [relying_party.url + "/callback"],
            "name": "Example Shop",
        },
        {
            # A platform of its own: the sign-ins above bind Jenny's email at the shop.
            "client_id": "a11y-market",
            "client_secret": "a11y-market-secret-0123456789abcdef",
            "redirect_uris": [relying_party.url + "/callback"],
            "name": "Corner Market",
            "api_keys": [digest(PLATFORM_KEY)],
        },
        {
            "client_id": PARTNER,
            "client_secret": "a11y-partner-secret-0123456789abcdef",
            "redirect_uris": [relying_party.url + "/callback"],
            "name": "Partner App",
            "third_party": True,
        },
    ]
    # Each language's walk looks up a few emails, all from this one loopback network: more
    # than the default 30 per 10 minutes in all.
    provider = start_live_server(
        fakeredis.FakeRedis(decode_responses=True), clients, limits={"lookups_per_ip": 1000}
    )
    yield Sites(provider, relying_party)
    provider.stop()
    relying_party.stop()


def page_in_new_context(browser, locale: str, **options: object) -> object:
    """A page in a fresh browser context (no cookies) whose language is ``locale``."""
    context = browser.new_context(
        locale=locale, extra_http_headers={"Accept-Language": locale}, **options
    )
    page = context.new_page()
    # The form_post page's one script posts the answer at once; without it the page stays,
    # as it does for a person whose browser runs no JavaScript.
    page.route("**/static/form_post.js", lambda route: route.abort())
    return page


@pytest.fixture
def open_page(chromium) -> Iterator[Callable[..., object]]:  # noqa: F811 - the fixture
    """Pages in fresh contexts, closed after the test."""
    pages: list[object] = []

    def open_in(locale: str, **options: object) -> object:
        pages.append(page_in_new_context(chromium, locale, **options))
        return pages[-1]

    yield open_in
    for page in pages:
        page.context.close()


# Walking every state: the same steps for each check, by form actions and field ids rather
# than by words, so that they hold in every language.

EMAIL_FORM = "form[action$='/email'] [type=submit]"
CODE_FORM = "form[action$='/code'] [type=submit]"
# What shows that a page is in the state it is named for, whatever its language.
MARKS = {
    "error: a link from an unknown site": ".request-id-note",
    "email": "#email:not([aria-invalid])",
    "email: invalid email": "#email[aria-invalid=true][aria-describedby=email-error]",
    "email: too many lookups from this network": "#email-error[role=alert]",
    "email: too many codes sent to this email": "#email-error[role=alert]",
    "email: Link unreachable": "#email-error[role=alert]",
    "not on Link": "form[action$='/restart']",
    "code": "#code:not([aria-invalid])",
    "code: resend too soon": "#code-error[role=alert]",
    "code: wrong code": "#code[aria-invalid=true]",
    "code: expired": "#code[aria-invalid=true]",
    "code: Link busy": "#code-error[role=alert]",
    "finished: form_post": "form#response",
    "finished: back after signing in": "main:not(:has(form)) a.button-primary",
    "consent": "form[action$='/allow']",
    "logout: confirm": "button[value=stay]",
    "logout: still signed in": "main:not(:has(form)) a.button-primary",
    "logout: signed out": "main:not(:has(form)) a.button-primary",
    "logout: already signed out": "main:not(:has(form)) a.button-primary",
    "locked": "main:not(:has(#code)) form[action$='/cancel']",
    "email: verifying details for a platform": "#email",
    "account": "form[action$='/account/sign-out-everywhere']",
    "account: signed out everywhere": "main .notice[role=status]",
    "account: closed": "main:not(:has(form)) h1",
}

Check = Callable[[object, str], None]


def _submit(page, selector: str) -> None:
    with page.expect_navigation():
        page.locator(selector).click()


def walk_every_state(page, sites: Sites, locale: str, check: Check) -> list[str]:
    """Take ``page`` through every hosted page in every state, calling ``check`` on each;
    the states' names, in the order they were seen."""
    seen: list[str] = []

    def at(state: str) -> None:
        page.wait_for_load_state()
        assert page.locator(MARKS[state]).count() > 0, f"not at {state}: {page.url}"
        # In the language asked for: a page left in another would be checked in vain.
        assert page.evaluate("document.documentElement.lang") == locale, state
        seen.append(state)
        check(page, state)

    page.goto(f"{sites.provider.url}/authorize?client_id=nobody&ui_locales={locale}")
    at("error: a link from an unknown site")

    page.goto(sites.authorization_url(SHOP, locale, response_mode="form_post"))
    at("email")
    page.locator("#email").fill("jenny@localhost")  # an address to the browser, not to us
    _submit(page, EMAIL_FORM)
    at("email: invalid email")
    # The sandbox's emails that answer as a limit or an outage would.
    for email, state in (
        ("too-many-lookups@example.com", "email: too many lookups from this network"),
        ("too-many-sms@example.com", "email: too many codes sent to this email"),
        ("link-unavailable@example.com", "email: Link unreachable"),
    ):
        page.locator("#email").fill(email)
        _submit(page, EMAIL_FORM)
        at(state)
    page.locator("#email").fill("nobody@example.com")
    _submit(page, EMAIL_FORM)
    at("not on Link")
    _submit(page, "form[action$='/restart'] [type=submit]")
    page.locator("#email").fill(JENNY)
    _submit(page, EMAIL_FORM)
    at("code")
    _submit(page, "form[action$='/resend'] [type=submit]")
    at("code: resend too soon")
    code = sites.code
    page.locator("#code").fill(wrong_code_for(code))
    _submit(page, CODE_FORM)
    at("code: wrong code")
    page.locator("#code").fill("000002")  # the sandbox's expired code
    _submit(page, CODE_FORM)
    at("code: expired")
    page.locator("#code").fill("000004")  # the sandbox's "Link is rate limiting us"
    _submit(page, CODE_FORM)
    at("code: Link busy")
    page.locator("#code").fill(code)
    _submit(page, CODE_FORM)
    at("finished: form_post")
    page.go_back()
    at("finished: back after signing in")

    # Signed in now: the third party's consent, then the sign-out pages, need no code.
    page.goto(sites.authorization_url(PARTNER, locale))
    at("consent")
    _submit(page, "form[action$='/cancel'] [type=submit]")  # denied: asked again next time
    logout = f"{sites.provider.url}/logout?client_id={SHOP}&ui_locales={locale}"
    page.goto(logout)
    at("logout: confirm")
    _submit(page, "button[value=stay]")
    at("logout: still signed in")
    page.goto(logout)
    _submit(page, "button[value=sign_out]")
    at("logout: signed out")
    page.goto(logout)
    at("logout: already signed out")

    page.goto(sites.authorization_url(SHOP, locale))
    page.locator("#email").fill(JENNY)
    _submit(page, EMAIL_FORM)
    page.locator("#code").fill("000003")  # the sandbox's "too many wrong codes"
    _submit(page, CODE_FORM)
    at("locked")

    account = sites.platform_account()
    onboarding = sites.api(
        "/v1/account_links",
        account=account,
        type="account_onboarding",
        refresh_url=sites.relying_party.url + "/refresh",
        return_url=sites.relying_party.url + "/return",
    )
    page.goto(onboarding["url"])
    at("email: verifying details for a platform")
    _submit(page, EMAIL_FORM)
    page.locator("#code").fill(sites.code)
    _submit(page, CODE_FORM)
    page.goto(sites.api(f"/v1/accounts/{account}/login_links")["url"])
    at("account")
    _submit(page, "form[action$='/account/sign-out-everywhere'] [type=submit]")
    at("account: signed out everywhere")
    _submit(page, "form[action$='/account/sign-out'] [type=submit]")
    at("account: closed")
    return seen


# A person who uses the keyboard alone.

FOCUSED = """() => {
  const element = document.activeElement;
  const style = getComputedStyle(element);
  const outlined = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  return {
    id: element.id,
    name: element.tagName.toLowerCase()
      + (element.type ? '[type=' + element.type + ']' : '')
      + (element.form ? ' in ' + element.form.getAttribute('action') : '')
      + (element.getAttribute('href') ? ' to ' + element.getAttribute('href') : ''),
    ring: outlined || style.boxShadow !== 'none',
    describedBy: (element.getAttribute('aria-describedby') || '').split(' ').filter(Boolean),
  };
}"""


# What takes the keyboard's focus on these pages.
CONTROLS = "a[href], button, input:not([type=hidden]), select, textarea"


def tab_round(page) -> list[dict]:
    """Tab from the focused control through every other one and back to it: the controls
    met, in order; fails if the focus never comes back. Past the last control the focus
    leaves the page for the browser's own controls (the page sees its body), then wraps."""
    start = page.evaluate(FOCUSED)
    met = [start]
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused == start:
            return met
        if focused["name"] != "body":
            met.append(focused)
    raise AssertionError(f"Tab never came back to {start['name']}: {met}")


def tab_to(page, name_part: str) -> dict:
    """Press Tab until a control whose description contains ``name_part`` has the focus."""
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if name_part in focused["name"]:
            return focused
    raise AssertionError(f"Tab never reached {name_part}")


def focus_lands_on(page, field_id: str) -> dict:
    """The focused control, once the page's autofocus put it on ``field_id`` (Chromium
    applies autofocus in a rendering step after the load, so this waits for it)."""
    playwright_api.expect(page.locator(f"#{field_id}")).to_be_focused()
    return page.evaluate(FOCUSED)


def press_enter(page) -> None:
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state()


# What is found on each page: axe-core in light and dark, the layout at 320 px and at 200 %
# zoom, and whatever still moves when the person asked for less motion.


@dataclass(frozen=True)
class Findings:
    state: str
    violations: list[dict]
    dark_violations: list[dict]
    dark_palette: dict[str, str]
    overflow_at_320px: int
    overflow_at_200_percent: int
    moving_with_reduced_motion: list[str]
    # The page's controls, how many a round of Tab met, and those that showed no focus ring.
    controls: int
    tabbed_to: int
    focus_not_shown: list[str]


def axe_violations(page, axe_source: str, only: dict | None = None) -> list[dict]:
    """What axe-core finds against the WCAG 2.2 A and AA rules (or ``only`` those, as
    axe's runOnly) on the page as it stands."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source)
    result = page.evaluate(
        "options => axe.run(document, options)",
        {"runOnly": only or {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]},
    )
    return result["violations"]


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than its viewport (0 when it reflows)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


MOVING = """() => {
  const moving = [];
  for (const element of document.querySelectorAll('*')) {
    for (const pseudo of [null, '::before', '::after']) {
      const style = getComputedStyle(element, pseudo);
      const seconds = value => value.split(',').some(part => parseFloat(part) > 0);
      const animated = style.animationName !== 'none' && seconds(style.animationDuration);
      const transitioned = style.transitionProperty !== 'none' && seconds(style.transitionDuration);
      if (animated || transitioned) moving.push(element.tagName.toLowerCase() + (pseudo || '')
        + (element.className ? '.' + String(element.className).split(' ').join('.') : ''));
    }
  }
  const running = document.getAnimations()
    .map(a => 'running: ' + (a.animationName || a.transitionProperty || 'an animation'));
  return moving.concat(running);
}"""

PALETTE = """() => ({
  page: getComputedStyle(document.body).backgroundColor,
  card: getComputedStyle(document.querySelector('main')).backgroundColor,
  text: getComputedStyle(document.querySelector('main')).color,
})"""


# In dark mode only the colours change: axe-core's WCAG AA rules about colour are run there
# (the rest, run in light, would find the same again at twice the cost of the walk).
DARK_RULES = {"type": "rule", "values": ["color-contrast", "link-in-text-block"]}


def inspect(page, state: str, axe_source: str) -> Findings:
    """The findings on the page as it stands, which it leaves as it found it: light, with
    motion, at the desktop size (as the walk's page starts), so each state costs no resets."""
    violations = axe_violations(page, axe_source)
    page.emulate_media(color_scheme="dark")
    dark_violations = axe_violations(page, axe_source, DARK_RULES)
    dark_palette = page.evaluate(PALETTE)
    page.emulate_media(color_scheme="light", reduced_motion="reduce")
    moving = page.evaluate(MOVING)
    page.set_viewport_size(NARROW)
    at_320px = horizontal_overflow(page)
    page.set_viewport_size(ZOOMED)
    at_200_percent = horizontal_overflow(page)
    page.set_viewport_size(DESKTOP)
    page.emulate_media(color_scheme="light", reduced_motion="no-preference")
    controls = [met for met in tab_round(page) if met["name"] != "body"]
    return Findings(
        state,
        violations,
        dark_violations,
        dark_palette,
        at_320px,
        at_200_percent,
        moving,
        page.locator(CONTROLS).count(),
        len(controls),
        [control["name"] for control in controls if not control["ring"]],
    )


@pytest.fixture(scope="module", params=LOCALES)
def every_page(request, chromium, sites: Sites, axe_source: str) -> Iterator[list[Findings]]:  # noqa: F811
    """Every page in every state in one language (its ``ui_locales`` and Accept-Language),
    walked once in one page at a device scale factor of 2 and inspected in each view."""
    locale = request.param
    page = page_in_new_context(
        chromium,
        locale,
        viewport=DESKTOP,
        device_scale_factor=2,
        color_scheme="light",
        reduced_motion="no-preference",
    )
    # axe-core in every document the walk opens, as it opens: not sent over again each time.
    page.context.add_init_script(script=axe_source)
    findings: list[Findings] = []
    try:
        seen = walk_every_state(
            page,
            sites,
            locale,
            lambda page, state: findings.append(inspect(page, state, axe_source)),
        )
    finally:
        page.context.close()
    assert seen == list(MARKS)
    yield findings


def describe(violations: list[dict]) -> str:
    """Each violation as its rule id, the selectors of the nodes it found, and its help."""
    lines = []
    for violation in violations:
        lines.append(f"  {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"    {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"    at {json.dumps(node['target'])}: {node['failureSummary']!r}")
    return "\n".join(lines)


def relative_luminance(colour: str) -> float:
    """WCAG 2.2's relative luminance of a computed ``rgb(r, g, b)`` colour."""
    red, green, blue = (int(part) for part in colour[colour.index("(") + 1 : -1].split(",")[:3])

    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def test_axe_core_finds_no_wcag_violation_on_any_page_in_any_state(
    every_page: list[Findings],
) -> None:
    found = {f.state: f.violations for f in every_page if f.violations}

    report = "\n".join(f"{state}:\n{describe(violations)}" for state, violations in found.items())
    assert not found, "axe-core found WCAG 2.2 A/AA violations:\n" + report
    assert len(every_page) == len(MARKS)


def test_in_dark_mode_every_page_uses_its_dark_palette_and_axe_core_finds_no_contrast_fault(
    every_page: list[Findings],
) -> None:
    found = {f.state: f.dark_violations for f in every_page if f.dark_violations}
    light_pages = [
        f"{f.state}: {f.dark_palette}"
        for f in every_page
        if not (
            relative_luminance(f.dark_palette["page"]) < 0.05
            and relative_luminance(f.dark_palette["card"]) < 0.05
            and relative_luminance(f.dark_palette["text"]) > 0.6
        )
    ]

    report = "\n".join(f"{state}:\n{describe(violations)}" for state, violations in found.items())
    assert not found, "axe-core found WCAG 2.2 AA colour violations in dark mode:\n" + report
    assert light_pages == []


def test_no_page_scrolls_sideways_on_a_320_px_screen_or_at_200_percent_zoom(
    every_page: list[Findings],
) -> None:
    wider = [
        f"{f.state}: {f.overflow_at_320px} px at 320 px, {f.overflow_at_200_percent} px at 200 %"
        for f in every_page
        if f.overflow_at_320px > 0 or f.overflow_at_200_percent > 0
    ]

    assert wider == []
    assert len(every_page) == len(MARKS)


def test_with_reduced_motion_asked_for_nothing_on_any_page_animates_or_transitions(
    every_page: list[Findings],
) -> None:
    moving = {
        f.state: f.moving_with_reduced_motion for f in every_page if f.moving_with_reduced_motion
    }

    assert moving == {}
    assert len(every_page) == len(MARKS)


@pytest.mark.parametrize("locale", LOCALES)
def test_a_person_signs_in_by_keyboard_alone_seeing_the_focus_and_hearing_each_error(
    open_page, sites: Sites, locale: str
) -> None:
    page = open_page(locale)
    page.goto(sites.authorization_url(SHOP, locale))

    # The email field has the focus; a round of Tab meets every control, each with a ring.
    focus_lands_on(page, "email")
    email_page = tab_round(page)
    assert email_page[0]["id"] == "email"
    assert [control for control in email_page if not control["ring"]] == []
    assert len(email_page) == page.locator(CONTROLS).count()
    assert any("/email" in control["name"] for control in email_page[1:])
    page.keyboard.type("jenny@localhost")
    assert tab_to(page, "button[type=submit] in")["ring"]  # Continue, next in the form
    press_enter(page)

    # Refused: the focus is back on the field, which names the error for screen readers.
    assert focus_lands_on(page, "email")["describedBy"] == ["email-error"]
    assert page.locator("#email-error[role=alert]").inner_text()
    page.keyboard.press("Control+A")
    page.keyboard.type(JENNY)
    press_enter(page)

    focus_lands_on(page, "code")
    code_page = tab_round(page)
    assert code_page[0]["id"] == "code"
    assert [control for control in code_page if not control["ring"]] == []
    assert len(code_page) == page.locator(CONTROLS).count()
    page.keyboard.type(wrong_code_for(sites.code))
    assert "/code" in tab_to(page, "/code")["name"]
    press_enter(page)

    assert "code-error" in focus_lands_on(page, "code")["describedBy"]
    assert page.locator("#code-error[role=alert]").inner_text()
    assert page.locator("#code").get_attribute("aria-invalid") == "true"
    assert [control for control in tab_round(page) if not control["ring"]] == []
    page.keyboard.type(sites.code)
    press_enter(page)

    assert page.url.startswith(sites.relying_party.url + "/callback?code=")


def test_tab_reaches_every_control_on_every_page_and_each_shows_its_focus(
    every_page: list[Findings],
) -> None:
    unseen = {f.state: f.focus_not_shown for f in every_page if f.focus_not_shown}

    assert unseen == {}
    assert [
        (f.state, f.tabbed_to, f.controls) for f in every_page if f.tabbed_to != f.controls
    ] == []
    # Every page has a control at least: the skip link, before any of its own.
    assert all(f.controls > 0 for f in every_page)
