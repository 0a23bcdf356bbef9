"""RP-Initiated Logout 1.0: the end-session endpoint, its confirmation page, ``sid`` in ID
tokens, and the tokens that end with the session (Back-Channel Logout 1.0 §2.7).

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from authlib.integrations.base_client import OAuthError
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.store import keyspace
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    POST_SECRET,
    SHOP_SECRET,
    provider_config,
)
from tests.relying_party import Browser, RelyingParty, query_of
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too: every test (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

SHOP_SIGNED_OUT = "https://shop.example.test/signed-out"
BLOG_SIGNED_OUT = "https://blog.example.test/bye?from=link"


def logout_config() -> dict[str, Any]:
    config = provider_config()
    clients = config["clients"]
    assert isinstance(clients, list)
    clients[0]["post_logout_redirect_uris"] = [SHOP_SIGNED_OUT]
    clients[1]["post_logout_redirect_uris"] = [BLOG_SIGNED_OUT]
    clients[1]["refresh_tokens"] = True
    return config


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping(logout_config(), {"SHOP_SECRET": SHOP_SECRET}, "test")


def blog(app: Flask) -> RelyingParty:
    return RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        "client_secret_post",
        scope="openid email",
    )


def signed_in(
    browser: Browser, rp: RelyingParty, console: list[str], **extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sign in with an SMS code; the token response and the validated ID token's claims."""
    request, callback = sign_in(browser, rp, console, **extra)
    token = rp.exchange(callback, request)
    return token, rp.validate_id_token(token, request.nonce)


def sso(browser: Browser, rp: RelyingParty) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sign in at another client through the browser's session: no page, no SMS."""
    request = rp.authorization_request()
    answer = browser.get(request.url)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    token = rp.exchange(answer.headers["Location"], request)
    return token, rp.validate_id_token(token, request.nonce)


def logout(browser: Browser, **parameters: str):
    return browser.get("/logout?" + urlencode(parameters))


def silent_authorization(browser: Browser, rp: RelyingParty) -> dict[str, str]:
    """``prompt=none``: what the session answers without any page."""
    answer = browser.get(rp.authorization_request(prompt="none").url)
    assert answer.status_code == 302
    return query_of(answer.headers["Location"])


def session_cookie_cleared(answer) -> bool:
    return any(
        c.startswith("__Host-oidc_link_session=;") and "Max-Age=0" in c
        for c in answer.headers.getlist("Set-Cookie")
    )


def test_id_tokens_carry_the_session_sid_for_sms_and_sso_sign_ins_and_after_refresh(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    _, first = signed_in(browser, shop, console)
    other = blog(app)
    token, second = sso(browser, other)

    assert first["sid"].startswith("sid_")
    assert second["sid"] == first["sid"]
    refreshed = other.session.refresh_token(
        other.metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    claims = jwt.decode(refreshed["id_token"], options={"verify_signature": False})
    assert claims["sid"] == first["sid"]


def test_discovery_announces_the_end_session_endpoint_and_back_channel_logout(
    shop: RelyingParty,
) -> None:
    metadata = shop.metadata

    assert metadata["end_session_endpoint"] == ISSUER + "/logout"
    assert metadata["frontchannel_logout_supported"] is False
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True
    assert "sid" in metadata["claims_supported"]


def test_a_hint_for_the_current_session_logs_out_at_once_and_returns_with_state(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    token, _ = signed_in(browser, shop, console)

    answer = logout(
        browser,
        id_token_hint=token["id_token"],
        post_logout_redirect_uri=SHOP_SIGNED_OUT,
        state="s-123",
        ui_locales="en fr",
        logout_hint=JENNY,
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == SHOP_SIGNED_OUT + "?state=s-123"
    assert session_cookie_cleared(answer)
    assert silent_authorization(browser, shop)["error"] == "login_required"


def test_logout_works_with_post_and_an_expired_hint(
    browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    token, _ = signed_in(browser, shop, console)
    live_clock.advance(3 * 3600)  # the ID token has expired; the session has not

    answer = browser.client.post(
        "/logout",
        data={"id_token_hint": token["id_token"], "post_logout_redirect_uri": SHOP_SIGNED_OUT},
        base_url=ISSUER,
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == SHOP_SIGNED_OUT
    assert silent_authorization(browser, shop)["error"] == "login_required"


def test_the_redirect_keeps_the_registered_uris_own_query(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)
    token, _ = sso(browser, blog(app))

    answer = logout(
        browser,
        id_token_hint=token["id_token"],
        post_logout_redirect_uri=BLOG_SIGNED_OUT,
        state="x",
    )

    assert answer.headers["Location"] == BLOG_SIGNED_OUT + "&state=x"


def test_without_a_hint_the_user_is_asked_and_signing_out_ends_the_session(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)

    page = logout(browser, client_id="shop", post_logout_redirect_uri=SHOP_SIGNED_OUT, state="s1")

    assert page.status_code == 200
    assert browser.soup().h1.get_text() == "Sign out of Link?"
    assert "Example Shop asked to sign you out" in page.get_data(as_text=True)
    assert JENNY in page.get_data(as_text=True)
    buttons = {b.get_text(): b["value"] for b in browser.soup().find_all("button")}
    assert buttons == {"Sign out": "sign_out", "Stay signed in": "stay"}
    answer = browser.submit("", choice="sign_out")

    assert answer.status_code == 303
    assert answer.headers["Location"] == SHOP_SIGNED_OUT + "?state=s1"
    assert session_cookie_cleared(answer)
    assert silent_authorization(browser, shop)["error"] == "login_required"


def test_without_a_client_the_signed_out_page_is_shown_after_confirming(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)

    logout(browser)
    answer = browser.submit("", choice="sign_out")

    assert answer.status_code == 200
    assert browser.soup().h1.get_text() == "You have been signed out"
    assert session_cookie_cleared(answer)
    assert silent_authorization(browser, shop)["error"] == "login_required"


def test_staying_signed_in_keeps_the_session_and_does_not_go_to_the_post_logout_uri(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)

    logout(browser, client_id="shop", post_logout_redirect_uri=SHOP_SIGNED_OUT)
    answer = browser.submit("", choice="stay")

    assert answer.status_code == 200
    assert "Location" not in answer.headers
    assert browser.soup().h1.get_text() == "You are still signed in"
    assert browser.soup().find("a", string="Back to Example Shop")["href"] == (
        "https://shop.example.test/"
    )
    assert "code" in silent_authorization(browser, shop)


def test_a_confirmation_is_answered_once_and_only_by_the_browser_that_was_asked(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)
    logout(browser, client_id="shop")
    form = browser.soup().find("form")
    action, csrf = form["action"], form.find("input", {"name": "csrf_token"})["value"]

    stranger = app.test_client()
    from_elsewhere = stranger.post(
        action, data={"csrf_token": csrf, "choice": "sign_out"}, base_url=ISSUER
    )
    forged = browser.client.post(
        action, data={"csrf_token": "forged", "choice": "sign_out"}, base_url=ISSUER
    )

    assert from_elsewhere.status_code == 400
    assert forged.status_code == 400
    assert "code" in silent_authorization(browser, shop)
    first = browser.client.post(
        action, data={"csrf_token": csrf, "choice": "sign_out"}, base_url=ISSUER
    )
    again = browser.client.post(
        action, data={"csrf_token": csrf, "choice": "sign_out"}, base_url=ISSUER
    )
    assert first.status_code == 200
    assert again.status_code == 400
    assert "out of date" in again.get_data(as_text=True)


def test_an_unregistered_post_logout_redirect_uri_shows_an_error_and_keeps_the_session(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    token, _ = signed_in(browser, shop, console)

    answer = logout(
        browser,
        id_token_hint=token["id_token"],
        post_logout_redirect_uri="https://evil.example/steal",
        state="s",
    )

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "did not register" in answer.get_data(as_text=True)
    assert not session_cookie_cleared(answer)
    assert "code" in silent_authorization(browser, shop)


def test_a_post_logout_redirect_uri_without_a_known_client_is_refused(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)

    without_client = logout(browser, post_logout_redirect_uri=SHOP_SIGNED_OUT)
    unknown_client = logout(browser, client_id="nobody", post_logout_redirect_uri=SHOP_SIGNED_OUT)
    another_clients_uri = logout(
        browser, client_id="blog", post_logout_redirect_uri=SHOP_SIGNED_OUT
    )

    for answer in (without_client, unknown_client, another_clients_uri):
        assert answer.status_code == 400
        assert "Location" not in answer.headers
    assert "code" in silent_authorization(browser, shop)


def test_a_hint_from_another_client_with_a_mismatched_client_id_is_refused(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    token, _ = signed_in(browser, shop, console)

    answer = logout(
        browser,
        id_token_hint=token["id_token"],
        client_id="blog",
        post_logout_redirect_uri=BLOG_SIGNED_OUT,
    )

    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "two different sites" in answer.get_data(as_text=True)
    assert "code" in silent_authorization(browser, shop)


def test_a_garbled_or_foreign_hint_is_refused_without_a_redirect(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    token, claims = signed_in(browser, shop, console)
    foreign_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ours = jwt.get_unverified_header(token["id_token"])
    forged = jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": ours["kid"]})
    unknown_kid = jwt.encode(claims, foreign_key, algorithm="RS256", headers={"kid": "nope"})
    header, payload, signature = token["id_token"].split(".")
    tampered = ".".join([header, payload[:-4] + "AAAA", signature])

    for hint in ("garbage", "a.b.c", forged, unknown_kid, tampered):
        answer = logout(browser, id_token_hint=hint, post_logout_redirect_uri=SHOP_SIGNED_OUT)
        assert answer.status_code == 400, hint
        assert "Location" not in answer.headers
        assert "unreadable token" in answer.get_data(as_text=True)
    assert "code" in silent_authorization(browser, shop)


def test_a_hint_for_a_different_session_asks_for_confirmation(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    earlier, _ = signed_in(browser, shop, console)
    other_browser = Browser(app, ISSUER)
    signed_in(other_browser, shop, console)

    page = logout(
        other_browser, id_token_hint=earlier["id_token"], post_logout_redirect_uri=SHOP_SIGNED_OUT
    )

    assert page.status_code == 200
    assert other_browser.soup().h1.get_text() == "Sign out of Link?"
    assert "code" in silent_authorization(other_browser, shop)
    assert "code" in silent_authorization(browser, shop)


def test_without_a_session_logout_goes_straight_back_or_says_you_are_signed_out(
    browser: Browser,
) -> None:
    back = logout(browser, client_id="shop", post_logout_redirect_uri=SHOP_SIGNED_OUT, state="z")
    page = logout(browser, client_id="shop")

    assert back.status_code == 303
    assert back.headers["Location"] == SHOP_SIGNED_OUT + "?state=z"
    assert page.status_code == 200
    assert browser.soup().h1.get_text() == "You are signed out"
    assert browser.soup().find("a", string="Back to Example Shop") is not None


def test_logout_ends_refresh_tokens_issued_without_offline_access_but_not_offline_ones(
    app: Flask, browser: Browser, console: list[str]
) -> None:
    offline_shop = RelyingParty(
        app,
        ISSUER,
        "shop",
        "https://shop.example.test/callback",
        SHOP_SECRET,
        scope="openid email offline_access",
    )
    offline, _ = signed_in(browser, offline_shop, console)
    other = blog(app)
    online, claims = sso(browser, other)
    assert "offline_access" not in online["scope"]

    logout(browser, id_token_hint=online["id_token"])

    with pytest.raises(OAuthError) as refused:
        other.session.refresh_token(
            other.metadata["token_endpoint"], refresh_token=online["refresh_token"]
        )
    assert refused.value.error == "invalid_grant"
    kept = offline_shop.session.refresh_token(
        offline_shop.metadata["token_endpoint"], refresh_token=offline["refresh_token"]
    )
    assert kept["access_token"]
    assert claims["sid"]


def test_a_post_without_the_session_cookie_is_asked_again_as_a_get(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    """A cross-site form POST does not carry the SameSite=Lax session cookie; the same
    request as a top-level GET does."""
    token, _ = signed_in(browser, shop, console)
    fields = {
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": SHOP_SIGNED_OUT,
        "state": "p",
        "unknown": "dropped",
    }

    cookieless = browser.client.application.test_client()
    answer = cookieless.post("/logout", data=fields, base_url=ISSUER)

    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith("/logout?")
    assert query_of(location) == {k: v for k, v in fields.items() if k != "unknown"}
    again = browser.get(location)
    assert again.status_code == 303
    assert again.headers["Location"] == SHOP_SIGNED_OUT + "?state=p"
    assert silent_authorization(browser, shop)["error"] == "login_required"


def test_what_logout_keeps_in_redis_expires(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], redis_client
) -> None:
    signed_in(browser, shop, console)
    logout(browser, client_id="shop")

    dependents = list(redis_client.scan_iter(keyspace.pattern("session_links")))
    pending = list(redis_client.scan_iter(keyspace.pattern("logout")))
    assert len(dependents) == 1
    assert len(pending) == 1
    lifetimes = app.extensions["oidc_link"].services.settings.lifetimes
    assert 0 < redis_client.ttl(dependents[0]) <= lifetimes.session_absolute
    assert 0 < redis_client.ttl(pending[0]) <= 600


def test_a_confirmation_posted_from_another_site_is_refused_and_keeps_the_session(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in(browser, shop, console)
    logout(browser, client_id="shop")
    form = browser.soup().find("form")
    fields = {"csrf_token": form.find("input", {"name": "csrf_token"})["value"]}

    answer = browser.client.post(
        form["action"],
        data={**fields, "choice": "sign_out"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        base_url=ISSUER,
    )

    assert answer.status_code == 403
    assert "another website" in answer.get_data(as_text=True)
    assert "code" in silent_authorization(browser, shop)
    # The question is still open for the person's own answer from our page.
    own = browser.client.post(
        form["action"],
        data={**fields, "choice": "sign_out"},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        base_url=ISSUER,
    )
    assert own.status_code == 200
    assert silent_authorization(browser, shop)["error"] == "login_required"


def test_a_relying_partys_cross_site_logout_post_is_still_answered(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    """RP-Initiated Logout 1.0 §2 lets the RP's own page POST to the end-session endpoint:
    that is not one of our hosted forms, so its Origin is the RP's and that is fine."""
    token, _ = signed_in(browser, shop, console)

    answer = browser.client.post(
        "/logout",
        data={"id_token_hint": token["id_token"], "post_logout_redirect_uri": SHOP_SIGNED_OUT},
        headers={"Origin": "https://shop.example.test", "Sec-Fetch-Site": "cross-site"},
        base_url=ISSUER,
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == SHOP_SIGNED_OUT
    assert silent_authorization(browser, shop)["error"] == "login_required"
