"""A client's brand in the configuration (issue 19 item 3): https addresses without
credentials, and an accent colour refused when it fails WCAG AA contrast, each problem a
ConfigError naming the field and the client; and the contrast arithmetic on known pairs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oidc_link.config import settings_from_mapping
from oidc_link.config.brand import (
    BUTTON_TEXT,
    CARD_BACKGROUND,
    PAGE_BACKGROUND,
    Brand,
    contrast_ratio,
    relative_luminance,
)
from oidc_link.errors import ConfigError
from tests.conftest import SHOP_SECRET, provider_config

SITE_CSS = Path(__file__).resolve().parent.parent / "static" / "site.css"


def settings_with_shop(**brand: object) -> object:
    config = provider_config()
    config["clients"][0].update(brand)  # type: ignore[index]
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def problems_of(**brand: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_with_shop(**brand)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("#000000", "#ffffff", 21.0),
        ("#ffffff", "#ffffff", 1.0),
        ("#777777", "#ffffff", 4.48),  # the grey just too light for AA text on white
        ("#767676", "#ffffff", 4.54),  # and the one just dark enough
        ("#0000ff", "#ffffff", 8.59),
        ("#ff0000", "#ffffff", 4.00),
        ("#0a6b47", "#ffffff", 6.55),  # site.css's own primary under white text
    ],
)
def test_the_contrast_ratio_of_known_pairs_is_what_wcag_gives(
    first: str, second: str, expected: float
) -> None:
    assert contrast_ratio(first, second) == pytest.approx(expected, abs=0.005)
    assert contrast_ratio(second, first) == contrast_ratio(first, second)


def test_relative_luminance_runs_from_black_to_white_as_wcag_defines_it() -> None:
    assert relative_luminance("#000000") == 0.0
    assert relative_luminance("#ffffff") == pytest.approx(1.0)
    # A channel at or under 0.04045 is on the linear part of the sRGB curve.
    assert relative_luminance("#0a0000") == pytest.approx(0.2126 * (10 / 255) / 12.92)


def test_the_colours_the_check_uses_are_the_light_ones_site_css_declares() -> None:
    light = SITE_CSS.read_text().split("@media (prefers-color-scheme: dark)", 1)[0]
    declared = dict(re.findall(r"(--[a-z-]+):\s*(#[0-9a-fA-F]{6})", light))

    assert declared["--bg"] == PAGE_BACKGROUND
    assert declared["--card"] == CARD_BACKGROUND
    assert declared["--primary-text"] == BUTTON_TEXT


def test_a_brand_is_read_with_its_accent_in_lower_case() -> None:
    settings = settings_with_shop(
        logo_uri="https://cdn.shop.example.test/logo.png?v=2",
        client_uri="https://shop.example.test/",
        policy_uri="https://shop.example.test/privacy",
        tos_uri="https://shop.example.test/terms",
        accent_color="#0A6B47",
    )

    assert settings.client("shop").brand == Brand(  # type: ignore[attr-defined]
        logo_uri="https://cdn.shop.example.test/logo.png?v=2",
        client_uri="https://shop.example.test/",
        policy_uri="https://shop.example.test/privacy",
        tos_uri="https://shop.example.test/terms",
        accent_color="#0a6b47",
    )


def test_a_client_without_brand_fields_has_an_empty_brand() -> None:
    settings = settings_with_shop()

    assert settings.client("shop").brand == Brand()  # type: ignore[attr-defined]
    assert not Brand()


@pytest.mark.parametrize("field", ["logo_uri", "client_uri", "policy_uri", "tos_uri"])
def test_an_address_that_is_not_https_is_refused_naming_the_field_and_the_client(
    field: str,
) -> None:
    problems = problems_of(**{field: "http://shop.example.test/x"})

    assert problems == [
        f"clients[0].{field}: (client 'shop') 'http://shop.example.test/x' must be an https URL"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@shop.example.test/logo.png",
        "https://token@shop.example.test/logo.png",
    ],
)
def test_an_address_carrying_credentials_is_refused(url: str) -> None:
    (problem,) = problems_of(logo_uri=url)

    assert problem.startswith("clients[0].logo_uri: (client 'shop')")
    assert problem.endswith("must not contain a user name or password")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https:///no-host",
        "//shop.example.test/logo.png",
    ],
)
def test_an_address_of_another_kind_or_without_a_host_is_refused(url: str) -> None:
    (problem,) = problems_of(logo_uri=url)

    assert problem.endswith("must be an https URL")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.test/my logo.png",
        'https://shop.example.test/"logo".png',
        "https://shop.example.test/<logo>.png",
        "https://shöp.example.test/logo.png",
    ],
)
def test_an_address_with_spaces_quotes_or_unencoded_characters_is_refused(url: str) -> None:
    (problem,) = problems_of(client_uri=url)

    assert "must be written in plain ASCII" in problem


def test_an_accent_that_fails_aa_against_the_page_background_is_refused_with_its_ratio() -> None:
    (problem,) = problems_of(accent_color="#ffcc00")

    assert problem == (
        "clients[0].accent_color: (client 'shop') #ffcc00 has a contrast of 1.37:1 against "
        "the page background (#f3f4f6); WCAG AA needs 4.5:1: choose a darker colour"
    )


def test_an_accent_that_passes_on_white_but_not_on_the_grey_page_is_refused() -> None:
    # 4.54:1 on the white card and under white button text, 4.13:1 on the page's grey.
    (problem,) = problems_of(accent_color="#767676")

    assert "4.13:1 against the page background" in problem


def test_an_accent_dark_enough_everywhere_is_kept() -> None:
    settings = settings_with_shop(accent_color="#6f6f6f")

    assert settings.client("shop").brand.accent_color == "#6f6f6f"  # type: ignore[attr-defined]


@pytest.mark.parametrize("colour", ["red", "#12345", "#1234567", "0a6b47", "#0a6b4g", 255])
def test_an_accent_not_written_as_hex_rrggbb_is_refused(colour: object) -> None:
    (problem,) = problems_of(accent_color=colour)

    assert problem.startswith("clients[0].accent_color")
    assert "#RRGGBB" in problem or "must be a string" in problem


def test_every_brand_problem_of_every_client_is_reported_together() -> None:
    config = provider_config()
    config["clients"][0]["logo_uri"] = "http://shop.example.test/logo.png"  # type: ignore[index]
    config["clients"][2]["accent_color"] = "#ffffff"  # type: ignore[index]

    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")

    fields = [problem.field for problem in caught.value.problems]
    assert fields == ["clients[0].logo_uri", "clients[2].accent_color"]
    assert "(client 'spa')" in caught.value.problems[1].message
