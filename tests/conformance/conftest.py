"""The suite's static registration: the usual clients, plus what the OIDF plans configure.

The plans run with two static clients (``client`` and ``client2``) and, for logout, a
registered ``post_logout_redirect_uri``; the shared ``app`` fixture picks these settings up.
"""

from __future__ import annotations

import pytest
from flask import Flask
from joserfc.jwk import RSAKey

from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from tests.conformance.suite import (
    CITY,
    KEY_CLIENT,
    KEY_CLIENT_CALLBACK,
    KEY_CLIENT_KID,
    SECOND_CALLBACK,
    SECOND_CLIENT,
    SECOND_SECRET,
    SHOP_POST_LOGOUT,
    SuiteClient,
)
from tests.conftest import SHOP_SECRET, provider_config


@pytest.fixture(scope="session")
def client_private_key() -> RSAKey:
    """The private_key_jwt client's own key pair; only its public half is registered."""
    return RSAKey.generate_key(2048, {"kid": KEY_CLIENT_KID, "alg": "RS256", "use": "sig"})


@pytest.fixture
def settings(client_private_key: RSAKey) -> Settings:
    config = provider_config()
    # The plans' test user has an address; Link tells only the city (issue 19 item 4).
    config["link"]["sandbox"]["users"][0]["city"] = CITY  # type: ignore[index]
    clients = config["clients"]
    assert isinstance(clients, list)
    shop = next(c for c in clients if c["client_id"] == "shop")
    shop["post_logout_redirect_uris"] = [SHOP_POST_LOGOUT]
    # The plans' clients send no PKCE (only oidcc-ensure-request-with-valid-pkce does), so
    # they are registered as legacy confidential clients, as for a hosted certification run.
    for confidential in clients:
        if confidential.get("token_endpoint_auth_method") != "none":
            confidential["require_pkce"] = False
    # The plans' "client2": a second confidential client, for cross-client checks.
    clients.append(
        {
            "client_id": SECOND_CLIENT,
            "client_secret": SECOND_SECRET,
            "redirect_uris": [SECOND_CALLBACK],
            "name": "Conformance Client 2",
            "require_pkce": False,
        }
    )
    # The private_key_jwt variant: the client's public key registered inline (a JWK Set).
    clients.append(
        {
            "client_id": KEY_CLIENT,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [client_private_key.as_dict(private=False)]},
            "redirect_uris": [KEY_CLIENT_CALLBACK],
            "name": "Conformance private_key_jwt client",
            "require_pkce": False,
        }
    )
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


@pytest.fixture
def client(app: Flask, live_clock: FixedClock) -> SuiteClient:
    """The plans' "client": shop, with client_secret_basic."""
    return SuiteClient(app, live_clock)
