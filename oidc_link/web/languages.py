"""The hosted pages' languages: Babel catalogues compiled once per process, the language
each page speaks, and that language's words, numbers, dates and lists.

A page speaks its flow's ``ui_locales`` choice, else the browser's Accept-Language, else
``default_locale`` (config/locales.py matches the tags). Views never build catalogues.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_datetime
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from flask import current_app, g, request
from markupsafe import escape

from oidc_link.config import LOCALES, accepted_locale

CATALOGUES = Path(__file__).resolve().parent.parent / "translations"
LANGUAGES_EXTENSION = "oidc_link.languages"


def translatable(message: str) -> str:
    """Marks an English message for the catalogues where it is written (a table of notices
    or titles); the page translates it when it shows it."""
    return message


class PageLanguage:
    """One locale's words and forms, built once and shared by every page that speaks it."""

    def __init__(self, tag: str, translations: Translations) -> None:
        self.tag = tag
        self._translations = translations
        self._locale = Locale.parse(tag, sep="-")
        # HTML's dir: Arabic is written right to left, and the layout mirrors with it.
        self.direction = "rtl" if self._locale.character_order == "right-to-left" else "ltr"
        self._gettext = translations.gettext
        self._ngettext = translations.ngettext

    def gettext(self, message: str, **values: Any) -> str:
        """``message`` in this language, with ``%(name)s`` placeholders filled: escaped,
        unless a value is markup itself (an email in <strong>, placed where the language
        puts it)."""
        text = self._gettext(message)
        return escape(text) % values if values else text

    def ngettext(self, singular: str, plural: str, count: int, **values: Any) -> str:
        """The form of ``count`` this language uses (Arabic has six); ``%(count)s`` is the
        number as this language writes it."""
        text = self._ngettext(singular, plural, count)
        return escape(text) % {**values, "count": self.number(count)}

    def in_sentence(self, phrase: str) -> str:
        """A phrase that starts a list item, continuing a sentence: lower-case first letter,
        except in German, whose capitals belong to the words (nouns, the polite Sie)."""
        if self._locale.language == "de":
            return phrase
        return phrase[:1].lower() + phrase[1:]

    def phrases(self, keys: Iterable[str], words: dict[str, str]) -> str:
        """The words for ``keys`` (a key without words: itself) as one run of a sentence."""
        return self.gettext("; ").join(self.in_sentence(words.get(key, key)) for key in keys)

    def number(self, value: float) -> str:
        return format_decimal(value, locale=self._locale)

    def moment(self, epoch: int) -> str:
        """A date and time as this language writes them, in UTC (the page knows no zone)."""
        when = datetime.fromtimestamp(epoch, UTC)
        return format_datetime(when, "medium", tzinfo=UTC, locale=self._locale) + " UTC"

    def listing(self, names: Iterable[str]) -> str:
        """Names as a sentence lists them: "A, B and C", « A, B et C »..."""
        names = list(names)
        return format_list(names, locale=self._locale) if names else ""

    def minutes(self, seconds: int | None) -> str:
        """How long to wait, in whole minutes rounded up."""
        if seconds is None or seconds <= 0:
            return self.gettext("a few minutes")
        return self.ngettext("%(count)s minute", "%(count)s minutes", -(-seconds // 60))


class Languages:
    """Every catalogue, read from its .po file and compiled in memory when the app is made:
    no compiled file to fall out of step with its source, and nothing built per request."""

    def __init__(self, default_locale: str, directory: Path = CATALOGUES) -> None:
        self.by_tag = {tag: PageLanguage(tag, _compiled(directory, tag)) for tag in LOCALES}
        self.default = self.by_tag[default_locale]

    def choose(self, chosen: str | None, accept_language: str | None) -> PageLanguage:
        """The flow's (or logout request's) choice, else the browser's, else the default."""
        tag = chosen or (accepted_locale(accept_language) if accept_language else None)
        return self.by_tag[tag] if tag else self.default


def _compiled(directory: Path, tag: str) -> Translations:
    path = directory / tag.replace("-", "_") / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        catalogue = read_po(source, locale=tag.replace("-", "_"))
    compiled = BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return Translations(compiled)


def page_language() -> PageLanguage:
    """This request's language, chosen once: the flow's pages set it first (use_language)."""
    found: PageLanguage | None = g.get("language")
    if found is None:
        found = use_language(None)
    return found


def use_language(chosen: str | None) -> PageLanguage:
    """Speak ``chosen`` (a locale the flow or logout request named) on this request's pages,
    else the browser's preference, else the default."""
    languages: Languages = current_app.extensions[LANGUAGES_EXTENSION]
    found = languages.choose(chosen, request.headers.get("Accept-Language"))
    g.language = found
    return found


def template_words() -> dict[str, object]:
    """What every template reads of its language: ``_``, ``ngettext``, ``lang``, ``dir``."""
    language = page_language()
    return {
        "language": language,
        "_": language.gettext,
        "ngettext": language.ngettext,
    }
