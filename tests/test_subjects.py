"""Subjects: pairwise per client by default, shared by the clients of one sector
(OIDC Core §8.1), and the same at the ID token, userinfo and every later sign-in."""

from __future__ import annotations

import pytest
from flask import Flask

from oidc_link.config import Settings, settings_from_mapping
from tests.conftest import (
    ISSUER,
    ON_REDIS_CLUSTER,
    POST_SECRET,
    SHOP_SECRET,
    SPA_CALLBACK,
    provider_config,
)
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


@pytest.fixture
def settings() -> Settings:
    """shop and blog share the sector of one owner; spa stays a sector of its own."""
    config = provider_config()
    for client in config["clients"]:  # type: ignore[union-attr]
        if client["client_id"] in ("shop", "blog"):
            client["sector"] = "example-group"
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


def sso_subject(browser: Browser, rp: RelyingParty) -> str:
    """The ``sub`` a client gets when the browser's session answers its request."""
    request = rp.authorization_request()
    answer = browser.get(request.url)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    tokens = rp.exchange(answer.headers["Location"], request)
    return rp.validate_id_token(tokens, request.nonce)["sub"]


def test_clients_of_one_sector_see_the_same_sub_and_others_a_different_one(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, callback = sign_in(browser, shop, console)
    at_shop = shop.validate_id_token(shop.exchange(callback, request), request.nonce)["sub"]
    blog = RelyingParty(
        app, ISSUER, "blog", "https://blog.example.test/auth", POST_SECRET, "client_secret_post"
    )
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, None, "none")

    at_blog = sso_subject(browser, blog)
    at_spa = sso_subject(browser, spa)

    assert at_blog == at_shop
    assert at_spa != at_shop
    assert at_shop.startswith("acct_")


def test_the_sub_is_stable_across_sign_ins_and_the_same_at_userinfo(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, callback = sign_in(browser, shop, console)
    tokens = shop.exchange(callback, request)
    first = shop.validate_id_token(tokens, request.nonce)["sub"]
    userinfo = app.test_client().get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    again, callback = sign_in(Browser(app, ISSUER), shop, console)
    second = shop.validate_id_token(shop.exchange(callback, again), again.nonce)["sub"]

    assert userinfo.get_json()["sub"] == first
    assert second == first


def test_discovery_says_subjects_are_pairwise(app: Flask) -> None:
    document = app.test_client().get("/.well-known/openid-configuration").get_json()

    assert document["subject_types_supported"] == ["pairwise"]
