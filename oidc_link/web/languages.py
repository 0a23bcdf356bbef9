"""The hosted pages' languages: Babel catalogues compiled once per process, the language
each page speaks, and that language's words, numbers, dates and lists.

A page speaks its flow's ``ui_locales`` choice, else the browser's Accept-Language, else
``default_locale`` (config/locales.py matches the tags). Views never build catalogues, and
templates are compiled once per language with their messages already translated.
"""

from __future__ import annotations

import re
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
from flask import Request, current_app, g, has_request_context, request
from flask.ctx import AppContext
from jinja2 import Template, TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import escape

from oidc_link.config import LOCALES, accepted_locale
from oidc_link.web.template_globals import PageEnvironment

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
        self._locale = Locale.parse(tag, sep="-")
        # HTML's dir: Arabic is written right to left, and the layout mirrors with it.
        self.direction = "rtl" if self._locale.character_order == "right-to-left" else "ltr"
        self._gettext = translations.gettext
        self._ngettext = translations.ngettext
        # The templates compiled in this language (Languages.bake).
        self.environment: PageEnvironment | None = None

    def translation(self, message: str) -> str:
        return self._gettext(message)

    def fill(self, text: str, **values: Any) -> str:
        """A template's ``_``: its message was translated when the template was compiled
        (BakedMessages), so only the placeholders are left to fill."""
        return escape(text) % values if values else text

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

    def bake(self, environment: PageEnvironment) -> None:
        """An overlay of the app's environment for each language, whose templates are
        compiled with that language's messages in them (once, cached as any template)."""
        for language in self.by_tag.values():
            baked = environment.overlay(extensions=[BakedMessages], cache_size=400)
            assert isinstance(baked, LanguageEnvironment)
            baked.baked_for = language
            language.environment = baked

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
    # From the WSGI environ: an absent header costs no exception there.
    found = languages.choose(chosen, request.environ.get("HTTP_ACCEPT_LANGUAGE"))
    g.language = found
    return found


def use_language_in(context: AppContext, http: Request, chosen: str | None) -> PageLanguage:
    """``use_language`` for a page that holds its app context and request already: the same
    choice, kept in the same ``g``, without three lookups through Flask's proxies."""
    languages: Languages = context.app.extensions[LANGUAGES_EXTENSION]
    found = languages.choose(chosen, http.environ.get("HTTP_ACCEPT_LANGUAGE"))
    context.g.language = found
    return found


def template_words() -> dict[str, object]:
    """What every template reads of its language: ``_`` (which fills in placeholders),
    ``ngettext`` and ``language`` (its tag, direction, dates)."""
    language = page_language()
    return {"language": language, "_": language.fill, "ngettext": language.ngettext}


class LanguageEnvironment(PageEnvironment):
    """The app's Jinja environment: ``render_template`` gets a page's template from the
    overlay of the request's language, so every view renders in it without asking."""

    baked_for: PageLanguage | None = None

    def get_or_select_template(
        self,
        template_name_or_list: Any,
        parent: str | None = None,
        globals: Any = None,
    ) -> Template:
        if self.baked_for is None and has_request_context():
            baked = page_language().environment
            if baked is not None:
                if isinstance(template_name_or_list, str):  # every view of ours names one
                    return baked.get_template(template_name_or_list, parent, globals)
                return baked.get_or_select_template(template_name_or_list, parent, globals)
        return super().get_or_select_template(template_name_or_list, parent, globals)


class BakedMessages(Extension):
    """Translates a template's messages as it is compiled, for one language's overlay, so a
    page costs what it did in English only: ``{{ _("…", name=value) }}`` becomes the
    translated text with ``{{ value }}`` where its placeholder stands (escaped as any
    output); in any other ``_("…", ...)`` the message becomes its translation, which ``_``
    then only fills in. Each ``_`` names its message as a string, as the catalogues'
    extraction reads it."""

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        language: PageLanguage = self.environment.baked_for  # type: ignore[attr-defined]
        tokens = list(stream)
        out: list[Token] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if _is_fixed_attribute(out, tokens, index):
                # {{ language.tag }}, {{ language.direction }}: the overlay's own, as text.
                out[-1] = Token(
                    token.lineno, "data", str(escape(getattr(language, tokens[index + 2].value)))
                )
                index += 4
                continue
            if not (token.type == "name" and token.value == "_"):
                out.append(token)
                index += 1
                continue
            if [t.type for t in tokens[index + 1 : index + 3]] != ["lparen", "string"]:
                raise TemplateSyntaxError(
                    "_() takes its message as a string", token.lineno, stream.name, stream.filename
                )
            text = language.translation(tokens[index + 2].value)
            values, closing = _arguments(tokens, index + 3, stream)
            after = tokens[closing + 1] if closing + 1 < len(tokens) else None
            if out and out[-1].type == "variable_begin" and after and after.type == "variable_end":
                out.pop()
                out.extend(_spelled_out(text, values, token.lineno, stream))
                index = closing + 2
                continue
            out.extend((token, tokens[index + 1], Token(token.lineno, "string", text)))
            index += 3
        return out


# What a template may read of its language that is fixed for the language's overlay.
_FIXED_ATTRIBUTES = ("tag", "direction")


def _is_fixed_attribute(out: list[Token], tokens: list[Token], index: int) -> bool:
    """Whether ``tokens[index:]`` is ``language.tag }}`` (or ``.direction``) after ``{{``."""
    run = tokens[index : index + 4]
    return (
        bool(out)
        and out[-1].type == "variable_begin"
        and [t.type for t in run] == ["name", "dot", "name", "variable_end"]
        and run[0].value == "language"
        and run[2].value in _FIXED_ATTRIBUTES
    )


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_OPENING = {"lparen", "lbracket", "lbrace"}
_CLOSING = {"rparen", "rbracket", "rbrace"}


def _arguments(
    tokens: list[Token], index: int, stream: TokenStream
) -> tuple[dict[str, list[Token]], int]:
    """The ``name=expression`` arguments after a ``_`` call's message, as token runs, and the
    index of the call's closing parenthesis."""
    values: dict[str, list[Token]] = {}
    while tokens[index].type == "comma":
        name, assign = tokens[index + 1], tokens[index + 2]
        if name.type != "name" or assign.type != "assign":
            raise TemplateSyntaxError(
                "_() takes name=value after its message", name.lineno, stream.name, stream.filename
            )
        index += 3
        depth = 0
        run: list[Token] = []
        while depth or tokens[index].type not in ("comma", "rparen"):
            depth += (tokens[index].type in _OPENING) - (tokens[index].type in _CLOSING)
            run.append(tokens[index])
            index += 1
        values[name.value] = run
    return values, index


def _spelled_out(
    text: str, values: dict[str, list[Token]], lineno: int, stream: TokenStream
) -> list[Token]:
    """``text`` as template output: its words as data, each placeholder as ``{{ value }}``."""
    out: list[Token] = []
    for position, part in enumerate(_PLACEHOLDER.split(text)):
        if position % 2 == 0:
            if part:
                out.append(Token(lineno, "data", str(escape(part))))
            continue
        if part not in values:
            raise TemplateSyntaxError(
                f"the translation names %({part})s, which the call does not give",
                lineno,
                stream.name,
                stream.filename,
            )
        out.extend(
            (
                Token(lineno, "variable_begin", "{{"),
                *values[part],
                Token(lineno, "variable_end", "}}"),
            )
        )
    return out
