"""The request Authlib's hooks see (oauth/messages.py): the same whether or not its issuer's
transport was checked once for every request."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749 import InsecureTransportError, OAuth2Request

from oidc_link.oauth.messages import AuthlibRequest, ProtocolRequest

ASKED = ProtocolRequest(
    "POST",
    "/token",
    query=[("a", "1")],
    form=[("grant_type", "authorization_code")],
    headers={"Authorization": "Basic eDp5"},
)


def test_a_request_for_a_checked_issuer_has_every_field_authlibs_own_constructor_sets() -> None:
    authlib_own = OAuth2Request("POST", "https://id.example.test/token", headers=ASKED.headers)

    checked_once = AuthlibRequest("https://id.example.test", ASKED, secure_issuer=True)
    checked_here = AuthlibRequest("https://id.example.test", ASKED)

    own_fields = {name: value for name, value in vars(authlib_own).items() if name != "payload"}
    assert {name: vars(checked_once)[name] for name in own_fields} == own_fields
    assert vars(checked_once).keys() == vars(checked_here).keys()
    assert {name: value for name, value in vars(checked_once).items() if name != "payload"} == {
        name: value for name, value in vars(checked_here).items() if name != "payload"
    }
    assert checked_once.payload.datalist == checked_here.payload.datalist


def test_a_request_for_an_issuer_not_checked_is_still_refused_over_plain_http() -> None:
    with pytest.raises(InsecureTransportError):
        AuthlibRequest("http://id.example.test", ASKED)


def test_a_repeated_parameter_gives_authlib_its_first_value_and_every_value_in_order() -> None:
    asked = ProtocolRequest(
        "GET",
        "/authorize",
        query=[("scope", "openid"), ("state", "a"), ("scope", "openid email"), ("nonce", "n")],
    )

    payload = AuthlibRequest("https://id.example.test", asked, secure_issuer=True).payload

    assert payload.data == {"scope": "openid", "state": "a", "nonce": "n"}
    assert list(payload.data) == ["scope", "state", "nonce"]
    assert payload.datalist == {"scope": ["openid", "openid email"], "state": ["a"], "nonce": ["n"]}
    assert payload.datalist is payload.datalist  # built once, when first asked


def test_parameters_each_sent_once_are_authlibs_data_and_datalist_alike() -> None:
    payload = AuthlibRequest("https://id.example.test", ASKED, secure_issuer=True).payload

    assert payload.data == {"a": "1", "grant_type": "authorization_code"}
    assert payload.datalist == {"a": ["1"], "grant_type": ["authorization_code"]}
