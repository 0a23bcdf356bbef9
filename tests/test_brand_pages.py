"""A client's brand on its hosted pages (issue 19 item 3): the logo (https, no referrer, a
fixed size, alt text), the client, policy and terms links, and the accent as a stylesheet
from this server; the pages' Content-Security-Policy lets exactly that logo in and still no
inline style. A client without a brand gets the pages as before.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import pytest
from flask import Flask

from oidc_link.config import Settings, settings_from_mapping
from oidc_link.web.headers import CONTENT_SECURITY_POLICY
from tests.conftest import ISSUER, JENNY, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code

LOGO = "https://cdn.shop.example.test/brand/logo.png?v=3"
ACCENT = "#0a6b47"
PARTNER_SECRET = "partner-secret-0123456789abcdef"
PARTNER_CALLBACK = "https://partner.example.test/callback"
PARTNER_ACCENT = "#5b21b6"


@pytest.fixture
def settings() -> Settings:
    """Shop with every brand field; Partner App (third party) with a logo and its own
    accent; blog and spa as they are."""
    config = provider_config()
    clients = config["clients"]
    clients[0].update(  # type: ignore[index]
        logo_uri=LOGO,
        client_uri="https://shop.example.test/",
        policy_uri="https://shop.example.test/privacy?lang=en&x=1",
        tos_uri="https://shop.example.test/terms",
        accent_color=ACCENT.upper(),
    )
    clients.append(  # type: ignore[union-attr]
        {
            "client_id": "partner",
            "client_secret": PARTNER_SECRET,
            "redirect_uris": [PARTNER_CALLBACK],
            "name": "Partner App",
            "third_party": True,
            "logo_uri": "https://partner.example.test/a;b,c.svg",
            "accent_color": PARTNER_ACCENT,
        }
    )
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def email_page(app: Flask, client_id: str, callback: str, secret: str | None) -> Browser:
    browser = Browser(app, ISSUER)
    rp = RelyingParty(app, ISSUER, client_id, callback, secret)
    page = browser.start(rp.authorization_request().url)
    assert page.status_code == 200
    return browser


def test_the_email_page_shows_the_logo_at_a_fixed_size_without_a_referrer(app: Flask) -> None:
    browser = email_page(app, "shop", "https://shop.example.test/callback", SHOP_SECRET)

    logo = browser.soup().select_one("main img.brand-logo")
    assert logo is not None
    assert logo["src"] == LOGO
    assert logo["referrerpolicy"] == "no-referrer"
    assert (logo["width"], logo["height"]) == ("64", "64")
    assert logo["alt"] == "Example Shop"


def test_the_email_page_links_the_site_its_policy_and_its_terms_without_opener_or_referrer(
    app: Flask,
) -> None:
    browser = email_page(app, "shop", "https://shop.example.test/callback", SHOP_SECRET)

    links = browser.soup().select("ul.brand-links a")
    assert [(link["href"], link.get_text(" ", strip=True)) for link in links] == [
        ("https://shop.example.test/", "Example Shop (opens in a new tab)"),
        ("https://shop.example.test/privacy?lang=en&x=1", "Privacy policy (opens in a new tab)"),
        ("https://shop.example.test/terms", "Terms of service (opens in a new tab)"),
    ]
    assert all(link["rel"] == ["noopener", "noreferrer"] for link in links)
    assert browser.soup().select_one("ul.brand-links")["aria-label"] == "About Example Shop"


def test_a_branded_page_lets_in_exactly_its_logo_and_keeps_style_from_this_server_only(
    app: Flask,
) -> None:
    browser = email_page(app, "shop", "https://shop.example.test/callback", SHOP_SECRET)
    assert browser.page is not None

    policy = browser.page.headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY.replace(
        "img-src 'self'", "img-src 'self' https://cdn.shop.example.test/brand/logo.png"
    )
    assert "style-src 'self';" in policy
    assert browser.page.headers.getlist("Content-Security-Policy") == [policy]
    assert browser.soup().find(style=True) is None
    assert browser.soup().find("style") is None


def test_a_logo_path_with_csp_separators_is_percent_encoded_in_the_policy(app: Flask) -> None:
    browser = Browser(app, ISSUER)
    partner = RelyingParty(app, ISSUER, "partner", PARTNER_CALLBACK, PARTNER_SECRET)
    browser.start(partner.authorization_request().url)
    assert browser.page is not None

    policy = browser.page.headers["Content-Security-Policy"]
    assert "img-src 'self' https://partner.example.test/a%3Bb%2Cc.svg;" in policy


def test_the_accent_comes_as_a_stylesheet_of_this_server_that_sets_the_primary_colour(
    app: Flask,
) -> None:
    browser = email_page(app, "shop", "https://shop.example.test/callback", SHOP_SECRET)

    stylesheet = browser.soup().select_one("main link[rel=stylesheet]")
    assert stylesheet is not None
    assert stylesheet["href"] == "/brand/accent-0a6b47.css"
    answer = browser.client.get(stylesheet["href"], base_url=ISSUER)
    assert answer.status_code == 200
    assert answer.mimetype == "text/css"
    css = answer.get_data(as_text=True)
    assert "--primary: #0a6b47;" in css
    assert "--link: #0a6b47;" in css
    assert "--accent-edge: 4px solid #0a6b47;" in css
    assert answer.headers["Cache-Control"] == "public, max-age=86400"


@pytest.mark.parametrize("path", ["/brand/accent-ffcc00.css", "/brand/accent-0A6B47.css"])
def test_a_colour_no_client_has_gets_no_stylesheet(app: Flask, path: str) -> None:
    answer = app.test_client().get(path, base_url=ISSUER)

    assert answer.status_code == 404
    assert answer.mimetype == "text/html"


def test_the_code_page_shows_the_brand_too(app: Flask, console: list[str]) -> None:
    browser = email_page(app, "shop", "https://shop.example.test/callback", SHOP_SECRET)

    page = browser.submit("/email", email=JENNY)

    assert page.status_code == 200
    assert browser.soup().select_one("input#code") is not None
    assert browser.soup().select_one("main img.brand-logo")["src"] == LOGO
    assert "cdn.shop.example.test" in page.headers["Content-Security-Policy"]


def test_the_consent_page_shows_the_third_party_sites_logo_and_accent(
    app: Flask, console: list[str]
) -> None:
    browser = Browser(app, ISSUER)
    partner = RelyingParty(app, ISSUER, "partner", PARTNER_CALLBACK, PARTNER_SECRET)
    browser.start(partner.authorization_request().url)
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    browser.get(answer.headers["Location"])  # the consent step, a new flow's page

    assert browser.soup().find("form", action=lambda a: a and a.endswith("/allow")) is not None
    assert browser.soup().select_one("main img.brand-logo")["alt"] == "Partner App"
    stylesheet = browser.soup().select_one("main link[rel=stylesheet]")
    assert stylesheet["href"] == "/brand/accent-5b21b6.css"
    assert browser.soup().select_one("ul.brand-links") is None


def test_a_client_without_a_brand_gets_the_page_and_policy_as_before(app: Flask) -> None:
    browser = email_page(app, "blog", "https://blog.example.test/auth", None)
    assert browser.page is not None

    assert browser.page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert browser.soup().select_one(".brand, .brand-logo, main link") is None
    assert browser.soup().h1.get_text(strip=True) == "Sign in to blog"
