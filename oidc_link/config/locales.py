"""The languages the hosted pages speak, and which of them a BCP 47 tag asks for.

Pure matching on tags (no Babel): the flow keeps what ``ui_locales`` chose, the pages match
Accept-Language with the same rules, and discovery lists ``LOCALES``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from oidc_link.config.reader import Reader

# Each has a catalogue in oidc_link/translations/ (tests/test_translations.py checks both ways).
LOCALES = ("en", "fr", "de", "es", "it", "nl", "pt-BR", "ja", "ar")
DEFAULT_LOCALE = "en"
_BY_TAG = {locale.lower(): locale for locale in LOCALES}
# A tag with only a language, or a region we have no catalogue for, gets its language's:
# pt and pt-PT read pt-BR, en-GB reads en, fr-CA reads fr.
_BY_LANGUAGE = {locale.split("-")[0].lower(): locale for locale in LOCALES}
# Accept-Language headers repeat across a browser's requests: match each distinct one once.
_HEADER_CACHE = 512


def supported_locale(tag: str) -> str | None:
    """The locale of ours a language tag asks for: itself in any case, else its language's."""
    wanted = tag.strip().replace("_", "-").lower()
    return _BY_TAG.get(wanted) or _BY_LANGUAGE.get(wanted.split("-", 1)[0])


def first_supported(ui_locales: str | None) -> str | None:
    """OIDC Core §3.1.2.1: ``ui_locales`` is space-separated, most preferred first; the
    first we speak wins, and none we speak is no error (the page falls back)."""
    for tag in (ui_locales or "").split():
        found = supported_locale(tag)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=_HEADER_CACHE)
def accepted_locale(header: str) -> str | None:
    """The locale an Accept-Language header prefers most among ours (RFC 9110 §12.5.4:
    quality values, ``q=0`` means not acceptable; equal qualities keep their order)."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, parameters = item.partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        found = supported_locale(tag) if tag.strip() not in ("", "*") else None
        if found is not None and quality > 0:
            ranked.append((-quality, position, found))
    return min(ranked)[2] if ranked else None


def read_default_locale(reader: Reader, data: Mapping[str, Any]) -> str:
    """``default_locale``: the pages' language when neither the site nor the browser names
    one we speak."""
    value = reader.text(data, "default_locale", required=False)
    if value is None:
        return DEFAULT_LOCALE
    if value not in LOCALES:
        reader.problem("default_locale", f"must be one of {', '.join(LOCALES)}")
        return DEFAULT_LOCALE
    return value
