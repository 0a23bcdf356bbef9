"""The hosted pages in every language (issue 19 item 1): the catalogues hold exactly the
messages the templates and web/ use, each translated; no text a person reads bypasses them;
and the language is chosen by ui_locales (kept for the whole sign-in), then Accept-Language,
then ``default_locale``.
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import redis
from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po
from bs4 import BeautifulSoup
from flask import Flask
from jinja2 import Environment, TemplateSyntaxError
from markupsafe import Markup
from werkzeug.http import HTTP_STATUS_CODES

from oidc_link import create_app, errors
from oidc_link.clock import FixedClock
from oidc_link.config import LOCALES, ConfigError, accepted_locale, settings_from_mapping
from oidc_link.models import Flow
from oidc_link.services import build_services
from oidc_link.web.errors import FLOW_PAGES, HTTP_TITLES, LOGOUT_CONFIRMATION_MESSAGE
from oidc_link.web.languages import CATALOGUES, LANGUAGES_EXTENSION, Languages
from tests.api_client import SHOP_KEY, Platform, api_settings
from tests.conftest import ISSUER, JENNY, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code, wrong_code_for

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
WEB = ROOT / "oidc_link" / "web"
# What marks a message: ``_`` and ``ngettext`` in templates (web/languages.py's
# template_words), a PageLanguage's ``gettext``/``ngettext`` and ``translatable`` in web/,
# and the message of each LogoutRequestError logout.py raises (its page shows it).
TEMPLATE_KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
CODE_KEYWORDS = {**TEMPLATE_KEYWORDS, "translatable": None}
LOGOUT_KEYWORDS = {"LogoutRequestError": None}
# Text a template may show as it is: punctuation, and Link's name (page titles end in it).
PUNCTUATION = re.compile(r"[\s·—:;,.()\-]*")
BRAND = "Link"
# Attributes whose values a person reads (or hears from a screen reader).
READ_ATTRIBUTES = {"title", "alt", "aria-label", "placeholder"}


def _extracted(path: Path, method: str, keywords: dict[str, object]) -> set[str | tuple[str, ...]]:
    with path.open("rb") as source:
        return {
            message if isinstance(message, str) else tuple(message)
            for _, message, _, _ in extract(method, source, keywords=keywords)
        }


def used_messages() -> set[str | tuple[str, ...]]:
    """Every message the pages use, extracted with Babel's own extractors."""
    found: set[str | tuple[str, ...]] = set()
    for template in sorted(TEMPLATES.glob("*.html")):
        found |= _extracted(template, "jinja2.ext:babel_extract", TEMPLATE_KEYWORDS)
    for module in sorted(WEB.rglob("*.py")):
        found |= _extracted(module, "python", CODE_KEYWORDS)
    found |= _extracted(ROOT / "oidc_link" / "logout.py", "python", LOGOUT_KEYWORDS)
    return found


def catalogue(locale: str) -> Catalog:
    path = CATALOGUES / locale.replace("-", "_") / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        return read_po(source, locale=locale.replace("-", "_"))


def _key(message_id: str | tuple[str, ...]) -> str | tuple[str, ...]:
    return message_id if isinstance(message_id, str) else tuple(message_id)


# --- The catalogues against the code. ---


def test_there_is_a_catalogue_for_each_locale_and_no_other() -> None:
    folders = {path.name for path in CATALOGUES.iterdir() if path.is_dir()}

    assert folders == {locale.replace("-", "_") for locale in LOCALES}


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_the_pages_use_is_translated_in_every_catalogue(locale: str) -> None:
    held = {_key(message.id): message for message in catalogue(locale) if message.id}
    used = used_messages()

    assert used - set(held) == set(), f"{locale} lacks these messages"
    for message_id in used:
        strings = held[message_id].string
        forms = strings if isinstance(strings, tuple) else (strings,)
        assert all(forms), f"{locale}: no translation for {message_id!r}"


@pytest.mark.parametrize("locale", LOCALES)
def test_no_catalogue_holds_a_message_the_pages_no_longer_use(locale: str) -> None:
    held = {_key(message.id) for message in catalogue(locale) if message.id}

    assert held - used_messages() == set()


@pytest.mark.parametrize("locale", LOCALES)
def test_every_translation_keeps_its_messages_placeholders(locale: str) -> None:
    """Babel's own checks: a translation naming a placeholder its message lacks would raise
    (KeyError) when the page fills it in."""
    problems = [
        (message.id, [str(error) for error in found])
        for message, found in catalogue(locale).check()
    ]

    assert problems == []


def test_each_status_page_is_titled_in_english_as_werkzeug_names_the_status() -> None:
    assert {status: HTTP_STATUS_CODES[status] for status in HTTP_TITLES} == HTTP_TITLES


def test_each_flow_error_page_says_in_english_what_errors_py_says() -> None:
    """Pages pick their words by code (DESIGN.md §6); English pages still read as the
    errors' own messages, which logs and /v1 keep."""
    flow_errors = [errors.FlowError, *errors.FlowError.__subclasses__()]
    for error in flow_errors:
        assert FLOW_PAGES[error.code][2] == error.message, error.__name__
    assert errors.LogoutError.__subclasses__()[1].message == LOGOUT_CONFIRMATION_MESSAGE


# --- No text a person reads bypasses the catalogues. ---


class _ReadText(HTMLParser):
    """The text nodes and read attributes of a template with its Jinja parts blanked."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag in ("script", "style")
        self.found.extend(value for name, value in attrs if name in READ_ATTRIBUTES and value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.found.append(data)


def untranslated_text(source: str) -> list[str]:
    """Text a person would read that a template writes as it is, outside ``{{ ... }}``."""
    blanked = "".join(
        value if token == "data" else " "
        for _, token, value in Environment(autoescape=True).lex(source)
    )
    reader = _ReadText()
    reader.feed(blanked)
    return [
        text.strip() for text in reader.found if not PUNCTUATION.fullmatch(text.replace(BRAND, ""))
    ]


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_no_template_shows_text_outside_the_translation_function(template: Path) -> None:
    assert untranslated_text(template.read_text()) == []


def test_the_template_check_finds_text_and_read_attributes_left_in_english() -> None:
    source = (
        '<h1>{{ _("Sign in") }}</h1><p>Enter your email</p>'
        '<img alt="Company logo" src="x">{% if a %}Back{% endif %}'
    )

    assert untranslated_text(source) == ["Enter your email", "Company logo", "Back"]


# Where web/ hands a page its words: each must come through the page's language, never as
# an English literal (the template would show it as it is).
PAGE_WORD_CALLS = {"error_page", "ErrorPage"}
PAGE_WORD_KEYWORDS = {"title", "message", "next_label", "notice", "error"}


def english_literals_given_to_pages(source: str) -> list[str]:
    """String literals passed straight to an error page's title, message or label."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        if name in PAGE_WORD_CALLS:
            given = [*node.args, *(k.value for k in node.keywords if k.arg == "next_label")]
        elif name == "render_template":
            given = [k.value for k in node.keywords if k.arg in PAGE_WORD_KEYWORDS]
        else:
            continue
        found += [
            arg.value
            for arg in given
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value
        ]
    return found


@pytest.mark.parametrize("module", sorted(WEB.rglob("*.py")), ids=lambda p: p.name)
def test_no_view_gives_a_page_english_words_that_skip_the_catalogues(module: Path) -> None:
    assert english_literals_given_to_pages(module.read_text()) == []


def test_the_view_check_finds_an_english_title_given_to_an_error_page() -> None:
    source = (
        'error_page("Gone", language.gettext("Ok"), 404, next_label="Back")\n'
        "render_template('x.html', error=_('Fine'), notice='Saved')\n"
    )

    assert english_literals_given_to_pages(source) == ["Gone", "Back", "Saved"]


# --- Templates compiled per language (web/languages.py BakedMessages). ---


def _french(app: Flask) -> Environment:
    environment = app.extensions[LANGUAGES_EXTENSION].by_tag["fr"].environment
    assert environment is not None
    return environment


def test_a_template_is_compiled_with_its_messages_translated_and_its_values_escaped(
    app: Flask,
) -> None:
    """A whole ``{{ _(...) }}`` leaves no call behind: the page renders with no ``_``."""
    template = _french(app).from_string(
        '<h1>{{ _("Sign in to %(client)s", client=name) }}</h1>'
        '<p title="{{ _("Skip to main content") }}">{{ _("Back to %(site)s", site=bold) }}</p>'
    )

    page = template.render(name="<Shop & Co>", bold=Markup("<b>Shop</b>"))

    assert page == (
        "<h1>Se connecter à &lt;Shop &amp; Co&gt;</h1>"
        '<p title="Aller au contenu principal">Retour à <b>Shop</b></p>'
    )


def test_a_message_inside_an_expression_is_translated_and_filled_in_by_the_pages_underscore(
    app: Flask,
) -> None:
    french = app.extensions[LANGUAGES_EXTENSION].by_tag["fr"]
    template = _french(app).from_string('{{ ("» " ~ _("Back to %(site)s", site=name))|upper }}')

    assert template.render(name="<Shop>", _=french.fill) == "» RETOUR À &LT;SHOP&GT;"


def test_a_template_whose_message_is_not_a_string_or_whose_translation_lacks_a_value_is_refused(
    app: Flask,
) -> None:
    with pytest.raises(TemplateSyntaxError, match="takes its message as a string"):
        _french(app).from_string("{{ _(title) }}")
    with pytest.raises(TemplateSyntaxError, match="does not give"):
        _french(app).from_string('{{ _("Sign in to %(client)s") }}')


# --- Choosing the language. ---


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("de", "de"),
        ("fr-CA,fr;q=0.9,en;q=0.5", "fr"),
        ("en-GB,en;q=0.9", "en"),
        ("pt", "pt-BR"),
        ("pt-PT", "pt-BR"),
        ("sv,de;q=0.3,ja;q=0.7", "ja"),
        ("ja;q=0,ar", "ar"),
        ("*", None),
        ("xx-YY, ;q=oops", None),
    ],
)
def test_accept_language_picks_the_most_wanted_locale_we_speak(
    header: str, chosen: str | None
) -> None:
    assert accepted_locale(header) == chosen


def test_numbers_dates_and_lists_are_written_the_languages_way() -> None:
    languages = Languages("en")
    german, english = languages.by_tag["de"], languages.by_tag["en"]
    moment = 1_796_635_800  # 7 December 2026, 09:30 UTC

    assert english.moment(moment) == "Dec 7, 2026, 9:30:00\u202fAM UTC"
    assert german.moment(moment) == "07.12.2026, 09:30:00 UTC"
    assert german.number(12345) == "12.345"
    assert german.listing(["A", "B", "C"]) == "A, B und C"
    assert languages.by_tag["fr"].minutes(61) == "2 minutes"
    assert languages.by_tag["ar"].direction == "rtl"
    assert german.direction == "ltr"


def test_a_flow_stored_before_languages_loads_and_is_written_as_before() -> None:
    """Old and new versions share one Redis in a rolling upgrade (models.py Record)."""
    stored = (
        '{"id":"flow_1","browser_digest":"d","client_id":"shop","authorization":{},'
        '"csrf_token":"t","created_at":1,"expires_at":2,"step":"email"}'
    )
    flow = Flow.from_record(stored)

    assert flow.locale is None
    assert "locale" not in flow.to_record()
    assert Flow.from_record(flow.advance(locale="ja").to_record()).locale == "ja"


def test_an_unknown_default_locale_is_refused_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match="default_locale: must be one of en, fr"):
        settings_from_mapping({**provider_config(), "default_locale": "xx"}, {}, "test")


def test_discovery_lists_every_language_the_pages_speak(app: Flask) -> None:
    document = app.test_client().get("/.well-known/openid-configuration").get_json()

    assert document["ui_locales_supported"] == list(LOCALES)


def _lang(browser: Browser) -> tuple[str, str]:
    html = browser.soup().find("html")
    return html["lang"], html["dir"]


def _alert(browser: Browser) -> str:
    alert = browser.soup().find(attrs={"role": "alert"})
    assert alert is not None
    return " ".join(alert.get_text().split())


def test_ui_locales_fr_keeps_the_whole_sign_in_in_french(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    """OIDC Core §3.1.2.1: the first locale we speak wins (sv is not one); the flow keeps it
    through the email page, its error, the code page and a wrong code."""
    browser.start(shop.authorization_request(ui_locales="sv fr de").url)
    assert _lang(browser) == ("fr", "ltr")
    assert browser.soup().h1.get_text() == "Se connecter à Example Shop"
    assert browser.soup().find("label", attrs={"for": "email"}).get_text() == "E-mail"

    browser.submit("/email", email="not an address")
    assert _alert(browser) == ("Erreur : Saisissez une adresse e-mail comme nom@exemple.com.")

    browser.submit("/email", email=JENNY)
    assert browser.soup().h1.get_text() == "Saisissez votre code"
    assert "Nous avons envoyé un code à 6 chiffres par SMS" in browser.soup().get_text()

    browser.submit("/code", code=wrong_code_for(announced_code(console)))
    assert _alert(browser) == "Erreur : Ce code n'est pas le bon. Il vous reste 4 essais."
    assert _lang(browser) == ("fr", "ltr")


def test_accept_language_de_picks_german_when_the_site_names_no_language(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de-DE,de;q=0.9,en;q=0.8"

    browser.start(shop.authorization_request().url)

    assert _lang(browser) == ("de", "ltr")
    assert browser.soup().h1.get_text() == "Bei Example Shop anmelden"
    assert browser.soup().find("label", attrs={"for": "email"}).get_text() == "E-Mail"
    assert browser.soup().find("button", type="submit").get_text() == "Weiter"


def test_ui_locales_wins_over_accept_language(browser: Browser, shop: RelyingParty) -> None:
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"

    browser.start(shop.authorization_request(ui_locales="ja").url)

    assert _lang(browser) == ("ja", "ltr")
    assert browser.soup().h1.get_text() == "Example Shop にログイン"


def test_arabic_pages_are_written_right_to_left(browser: Browser, shop: RelyingParty) -> None:
    browser.start(shop.authorization_request(ui_locales="ar").url)

    assert _lang(browser) == ("ar", "rtl")
    assert browser.soup().h1.get_text() == "تسجيل الدخول إلى Example Shop"


def test_without_ui_locales_or_accept_language_the_pages_are_english(
    browser: Browser, shop: RelyingParty
) -> None:
    browser.start(shop.authorization_request(ui_locales="xx").url)

    assert _lang(browser) == ("en", "ltr")
    assert browser.soup().h1.get_text() == "Sign in to Example Shop"


def test_the_configured_default_locale_speaks_when_nobody_names_one(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    settings = settings_from_mapping(
        {**provider_config(), "default_locale": "nl"}, {"SHOP_SECRET": SHOP_SECRET}, "test"
    )
    services = build_services(settings, clock=live_clock, redis_client=redis_client)
    app = create_app(settings, services)
    browser = Browser(app, ISSUER)
    shop = RelyingParty(app, ISSUER, "shop", "https://shop.example.test/callback", SHOP_SECRET)

    browser.start(shop.authorization_request().url)

    assert _lang(browser) == ("nl", "ltr")
    assert browser.soup().h1.get_text() == "Inloggen bij Example Shop"


def test_an_error_page_speaks_the_browsers_language(browser: Browser) -> None:
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "es"

    answer = browser.get("/signin/flow_unknown")

    assert answer.status_code == 404
    assert browser.soup().h1.get_text() == "No encontramos este inicio de sesión"
    assert "ID de solicitud" in browser.soup().get_text()


def test_logout_honours_ui_locales_on_both_of_its_pages(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    browser.start(shop.authorization_request().url)
    browser.submit("/email", email=JENNY)
    browser.submit("/code", code=announced_code(console))

    browser.get("/logout?client_id=shop&ui_locales=it")
    assert _lang(browser) == ("it", "ltr")
    assert browser.soup().h1.get_text() == "Uscire da Link?"

    form = browser.soup().find("form")
    fields = {field["name"]: field.get("value", "") for field in form.find_all("input")}
    answer = browser.client.post(
        form["action"], data={**fields, "choice": "sign_out"}, base_url=ISSUER
    )
    page = BeautifulSoup(answer.get_data(as_text=True), "html.parser")
    assert page.find("html")["lang"] == "it"
    assert page.h1.get_text() == "Sei stato disconnesso"


def test_the_account_page_speaks_the_browsers_language(
    redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    settings = api_settings()
    app = create_app(
        settings, build_services(settings, clock=live_clock, redis_client=redis_client)
    )
    platform = Platform(app, SHOP_KEY)
    account = platform.create_account()
    link = platform.post(f"/v1/accounts/{account['id']}/login_links").get_json()["url"]
    browser = Browser(app, ISSUER)
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "pt-BR"

    browser.get(link)
    browser.get("/account")

    assert _lang(browser) == ("pt-BR", "ltr")
    assert browser.soup().h1.get_text().startswith("Sua conta em ")
    assert browser.soup().find(id="details").get_text() == "Seus dados"
