"""Link's ``user.city`` as the ``address`` claim ``{"locality": city}`` (OIDC Core §5.1.1,
issue 19 item 4): released under the ``address`` scope, or one by one through the ``claims``
parameter (§5.5), in the ID token and at /userinfo; never to a client not registered for the
scope, never for a user Link tells no city, never guessed from anything else.

Every test here runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis
from flask import Flask

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import SandboxUser, Settings, settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.services import build_services
from tests.conftest import (
    ISSUER,
    JENNY,
    ON_REDIS_CLUSTER,
    POST_SECRET,
    SHOP_CALLBACK,
    SHOP_SECRET,
    provider_config,
)
from tests.fake_link_server import FakeLinkServer
from tests.relying_party import AuthorizationRequest, Browser, RelyingParty
from tests.sandbox_console import announced_code

# On a real Redis Cluster too (issue 17 item 3), but for the compatible key layout, which
# no cluster can serve (docs/operations.md "Upgrading").
pytestmark = ON_REDIS_CLUSTER(
    but_not={"test_with_the_compatible_key_layout_the_city_is_held_back_for_the_older_instances"}
)

SAM = "sam@example.com"
CITY = "São Paulo"
PARTNER_SECRET = "partner-secret-0123456789abcdef"
PARTNER_CALLBACK = "https://partner.example.test/callback"
KEK = base64.urlsafe_b64encode(b"k" * 32).decode()


def config_with_cities() -> dict[str, Any]:
    """The usual configuration, Jenny living in São Paulo (Sam has no city), and a third
    party, Partner App."""
    config = provider_config()
    config["link"]["sandbox"]["users"][0]["city"] = CITY  # type: ignore[index]
    config["clients"].append(  # type: ignore[union-attr]
        {
            "client_id": "partner",
            "client_secret": PARTNER_SECRET,
            "redirect_uris": [PARTNER_CALLBACK],
            "name": "Partner App",
            "third_party": True,
        }
    )
    return config


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping(config_with_cities(), {"SHOP_SECRET": SHOP_SECRET}, "test")


def shop_with(app: Flask, scope: str) -> RelyingParty:
    return RelyingParty(app, ISSUER, "shop", SHOP_CALLBACK, SHOP_SECRET, scope=scope)


def sign_in(
    app: Flask, rp: RelyingParty, code_of: Any, email: str = JENNY, **extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole journey at ``rp``: the token response and the validated ID token's claims."""
    request: AuthorizationRequest = rp.authorization_request(**extra)
    browser = Browser(app, ISSUER)
    browser.start(request.url)
    browser.submit("/email", email=email)
    answer = browser.submit("/code", code=code_of(email))
    assert answer.status_code == 302, answer.get_data(as_text=True)
    token = rp.exchange(answer.headers["Location"], request)
    return token, rp.validate_id_token(token, request.nonce)


def userinfo(rp: RelyingParty, token: dict[str, Any]) -> dict[str, Any]:
    answer = rp.http.get(
        ISSUER + "/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert answer.status_code == 200
    return answer.json()


def test_the_address_scope_gives_the_city_as_locality_at_userinfo_and_in_the_id_token(
    app: Flask, console: list[str]
) -> None:
    shop = shop_with(app, "openid address")

    token, claims = sign_in(app, shop, lambda email: announced_code(console))

    assert userinfo(shop, token)["address"] == {"locality": CITY}
    assert claims["address"] == {"locality": CITY}
    assert "name" not in claims  # the profile scope was not asked for


def test_a_claims_request_for_the_address_in_the_id_token_gives_it_there_only(
    app: Flask, console: list[str]
) -> None:
    shop = shop_with(app, "openid")
    asked = json.dumps({"id_token": {"address": None}})

    token, claims = sign_in(app, shop, lambda email: announced_code(console), claims=asked)

    assert claims["address"] == {"locality": CITY}
    assert "address" not in userinfo(shop, token)


def test_a_claims_request_for_the_address_at_userinfo_gives_it_there(
    app: Flask, console: list[str]
) -> None:
    shop = shop_with(app, "openid")
    asked = json.dumps({"userinfo": {"address": {"essential": True}}})

    token, claims = sign_in(app, shop, lambda email: announced_code(console), claims=asked)

    assert userinfo(shop, token)["address"] == {"locality": CITY}
    assert "address" not in claims


def test_without_the_address_scope_or_a_claims_request_there_is_no_address(
    app: Flask, console: list[str]
) -> None:
    shop = shop_with(app, "openid email profile")

    token, claims = sign_in(app, shop, lambda email: announced_code(console))

    assert "address" not in claims
    assert "address" not in userinfo(shop, token)
    assert claims["name"] == "Jenny Rosen"  # the full name as Link tells it, never split
    assert not {"given_name", "family_name"} & set(claims)


def test_a_user_without_a_city_gets_no_address_claim(app: Flask, console: list[str]) -> None:
    shop = shop_with(app, "openid address")
    asked = json.dumps({"id_token": {"address": None}, "userinfo": {"address": None}})

    token, claims = sign_in(app, shop, lambda email: announced_code(console), SAM, claims=asked)

    assert "address" not in claims
    assert "address" not in userinfo(shop, token)


def test_a_client_not_registered_for_the_address_scope_never_gets_the_address(
    app: Flask, console: list[str]
) -> None:
    blog = RelyingParty(
        app,
        ISSUER,
        "blog",
        "https://blog.example.test/auth",
        POST_SECRET,
        auth_method="client_secret_post",
        scope="openid email address",
    )
    asked = json.dumps({"id_token": {"address": None}, "userinfo": {"address": None}})

    token, claims = sign_in(app, blog, lambda email: announced_code(console), claims=asked)

    assert "address" not in claims
    assert "address" not in userinfo(blog, token)
    assert token["scope"] == "openid email"


def test_a_refreshed_id_token_still_carries_the_address(app: Flask, console: list[str]) -> None:
    shop = shop_with(app, "openid address offline_access")
    token, _ = sign_in(app, shop, lambda email: announced_code(console))

    refreshed = shop.session.refresh_token(
        shop.metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )

    payload = refreshed["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["address"] == {"locality": CITY}
    assert userinfo(shop, dict(refreshed))["address"] == {"locality": CITY}


def test_a_second_client_signed_in_by_the_sso_session_gets_the_city_too(
    app: Flask, console: list[str]
) -> None:
    browser = Browser(app, ISSUER)
    shop = shop_with(app, "openid")
    first = shop.authorization_request()
    browser.start(first.url)
    browser.submit("/email", email=JENNY)
    browser.submit("/code", code=announced_code(console))
    spa = RelyingParty(app, ISSUER, "spa", "http://127.0.0.1:3000/callback", None)
    spa.session.token_endpoint_auth_method = "none"
    spa.session.scope = "openid address"
    second = spa.authorization_request()

    answer = browser.get(second.url)  # the session signs Jenny in: no page, no SMS

    assert answer.status_code == 302
    token = spa.exchange(answer.headers["Location"], second)
    assert userinfo(spa, token)["address"] == {"locality": CITY}


def test_discovery_lists_the_address_scope_and_claim(app: Flask) -> None:
    metadata = shop_with(app, "openid").metadata

    assert "address" in metadata["scopes_supported"]
    assert "address" in metadata["claims_supported"]


def test_the_consent_page_says_in_plain_words_that_the_site_will_see_the_city(
    app: Flask, console: list[str]
) -> None:
    partner = RelyingParty(
        app, ISSUER, "partner", PARTNER_CALLBACK, PARTNER_SECRET, scope="openid address"
    )
    browser = Browser(app, ISSUER)
    browser.start(partner.authorization_request().url)
    browser.submit("/email", email=JENNY)
    answer = browser.submit("/code", code=announced_code(console))
    browser.get(answer.headers["Location"])

    asks = [item.get_text(strip=True) for item in browser.soup().select("ul.permissions li")]
    assert "See the city you live in" in asks
    assert "address" not in asks


def test_a_sandbox_user_is_read_with_a_city_and_one_that_is_not_text_is_refused() -> None:
    settings = settings_from_mapping(config_with_cities(), {"SHOP_SECRET": SHOP_SECRET}, "test")
    assert settings.link.sandbox_users[0] == SandboxUser(
        email=JENNY, phone="+14155550123", name="Jenny Rosen", city=CITY
    )
    assert settings.link.sandbox_users[1].city is None

    config = config_with_cities()
    config["link"]["sandbox"]["users"][1]["city"] = 42
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    assert [str(problem) for problem in caught.value.problems] == [
        "link.sandbox.users[1].city: must be a string"
    ]


def test_with_the_compatible_key_layout_the_city_is_held_back_for_the_older_instances(
    redis_client: redis.Redis, live_clock: FixedClock, console: list[str]
) -> None:
    config = config_with_cities() | {"redis": {"key_layout": "compatible"}}
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(
        settings, clock=live_clock, redis_client=redis_client, announce=console.append
    )
    app = create_app(settings, services)
    shop = shop_with(app, "openid address")

    token, claims = sign_in(app, shop, lambda email: announced_code(console))

    assert "address" not in claims
    assert "address" not in userinfo(shop, token)


def test_the_city_live_link_tells_becomes_the_address_claim(
    fake_link: FakeLinkServer, redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    config = config_with_cities()
    config["link"] = {
        "mode": "live",
        "live": {"base_url": fake_link.url, "publishable_key": fake_link.publishable_key},
    }
    environ = {"SHOP_SECRET": SHOP_SECRET, "OIDC_LINK_KEY_ENCRYPTION_KEY": KEK}
    settings = settings_from_mapping(config, environ, "test")
    app = create_app(
        settings, build_services(settings, clock=live_clock, redis_client=redis_client)
    )
    shop = shop_with(app, "openid address")
    jenny, sam = fake_link.users[0], fake_link.users[1]

    token, claims = sign_in(app, shop, fake_link.last_code, jenny.email)
    assert claims["address"] == {"locality": jenny.city}
    assert userinfo(shop, token)["address"] == {"locality": "San Francisco"}

    token, claims = sign_in(app, shop, fake_link.last_code, sam.email)
    assert "address" not in claims
    assert "address" not in userinfo(shop, token)
