"""The code issued for a stored authorization request (oauth/stored_request.py): when the
client's registration changed between /authorize and the end of the sign-in, the answer is
the one Authlib's whole validation of the stored request gives, whichever way each change
goes (the client gone, its redirect URI, its scopes, PKCE or PAR now required, its sector),
and a ``claims`` request naming a ``sub`` is held to the person who signed in.

Each case validates the request at /authorize under the first registration, then issues the
code under the second twice: as the Provider does, and with the registration check turned
off so that Authlib's validation decides, as before the check existed. The two answers (and
the codes' records) must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import redis

import oidc_link.oauth
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.models import AuthorizationCode, Identity
from oidc_link.oauth.messages import AuthorizationPageError, ProtocolRequest, ValidAuthorization
from oidc_link.oauth.stored_request import grant_if_still_registered
from oidc_link.services import Services, build_services
from oidc_link.store import keyspace
from tests.conftest import JENNY, SHOP_CALLBACK, SHOP_SECRET, provider_config

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
LEGACY_CALLBACK = "https://legacy.example.test/cb"


def registration(**changes: Any) -> dict[str, Any]:
    """The test configuration with a legacy client (no PKCE) added, then ``changes`` applied
    per client id (a dict of fields, or None to remove the client)."""
    config = provider_config()
    clients: list[dict[str, Any]] = config["clients"]  # type: ignore[assignment]
    clients.append(
        {
            "client_id": "legacy",
            "client_secret": "legacy-secret-0123456789abcdef",
            "redirect_uris": [LEGACY_CALLBACK],
            "require_pkce": False,
        }
    )
    kept = []
    for client in clients:
        change = changes.get(client["client_id"], {})
        if change is not None:
            kept.append({**client, **change})
    config["clients"] = kept
    return config


def services_for(config: dict[str, Any], redis_client: redis.Redis, clock: FixedClock) -> Services:
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(settings, clock=clock, redis_client=redis_client)
    services.build()
    return services


def query(client_id: str, redirect_uri: str, **extra: str) -> list[tuple[str, str]]:
    parameters = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": "s-1",
        "nonce": "n-1",
        **extra,
    }
    return list(parameters.items())


def with_pkce(client_id: str, redirect_uri: str, **extra: str) -> list[tuple[str, str]]:
    return query(
        client_id, redirect_uri, code_challenge=CHALLENGE, code_challenge_method="S256", **extra
    )


def validated(services: Services, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The parameters a flow keeps: /authorize's validation of ``pairs``."""
    valid = services.provider.validate_authorization(ProtocolRequest("GET", "/authorize", pairs))
    assert isinstance(valid, ValidAuthorization), valid
    return valid.parameters


def answer(
    services: Services, redis_client: redis.Redis, parameters: dict[str, str], who: Identity
) -> tuple[Any, ...]:
    """What issuing the code answers, the code itself left out, and the code's record (its
    random family left out)."""
    try:
        response = services.provider.approve(dict(parameters), who)
    except AuthorizationPageError as error:
        return ("page", error.error.error, error.description)
    location = response.location
    assert location is not None
    fields = parse_qsl(urlsplit(location).query, keep_blank_values=True)
    code = dict(fields).get("code")
    record = None
    if code is not None:
        raw = redis_client.get(keyspace.code(code)) or redis_client.get(
            keyspace.code(code, tagged=False)
        )
        assert raw
        record = replace(AuthorizationCode.from_record(raw), family_id=None)
    without_code = [(name, "<code>" if name == "code" else value) for name, value in fields]
    headers = [(k, v) for k, v in response.headers if k.lower() != "location"]
    return (response.status, response.body, headers, location.split("?")[0], without_code, record)


def both_ways(
    monkeypatch: pytest.MonkeyPatch,
    services: Services,
    redis_client: redis.Redis,
    parameters: dict[str, str],
    who: Identity,
) -> tuple[tuple[Any, ...], tuple[Any, ...], list[bool]]:
    """The answer with the registration check, and with Authlib's validation alone; and
    whether the check itself answered (True) or handed over to Authlib (False)."""
    used: list[bool] = []

    def spying(*args: Any) -> Any:
        grant = grant_if_still_registered(*args)
        used.append(grant is not None)
        return grant

    with monkeypatch.context() as patched:
        patched.setattr(oidc_link.oauth, "grant_if_still_registered", spying)
        checked = answer(services, redis_client, parameters, who)
    with monkeypatch.context() as patched:
        patched.setattr(oidc_link.oauth, "grant_if_still_registered", lambda *args: None)
        authlibs = answer(services, redis_client, parameters, who)
    return checked, authlibs, used


Case = tuple[Callable[[], list[tuple[str, str]]], dict[str, Any]]

CASES: dict[str, Case] = {
    "nothing changed": (lambda: with_pkce("shop", SHOP_CALLBACK), {}),
    "the client removed": (lambda: with_pkce("shop", SHOP_CALLBACK), {"shop": None}),
    "the redirect URI no longer registered": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"redirect_uris": ["https://shop.example.test/elsewhere"]}},
    ),
    "another redirect URI registered beside it": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"redirect_uris": ["https://shop.example.test/other", SHOP_CALLBACK]}},
    ),
    "a scope no longer registered": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"scopes": ["openid", "email"]}},
    ),
    "only openid left": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"scopes": ["openid"]}},
    ),
    "PKCE now required of a client that sent none": (
        lambda: query("legacy", LEGACY_CALLBACK),
        {"legacy": {"require_pkce": True}},
    ),
    "PKCE no longer required, a challenge sent anyway": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"require_pkce": False}},
    ),
    "PAR now required": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"require_pushed_authorization_requests": True}},
    ),
    "the client moved to a sector": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"sector": "shops"}},
    ),
    "the client turned public": (
        lambda: with_pkce("shop", SHOP_CALLBACK),
        {"shop": {"token_endpoint_auth_method": "none", "client_secret": None}},
    ),
    "a claims request without sub": (
        lambda: with_pkce("shop", SHOP_CALLBACK, claims=json.dumps({"id_token": {"email": None}})),
        {"shop": {"scopes": ["openid", "profile"]}},
    ),
    "a claims request naming another sub": (
        lambda: with_pkce(
            "shop",
            SHOP_CALLBACK,
            claims=json.dumps({"id_token": {"sub": {"value": "usr_somebodyelse"}}}),
        ),
        {},
    ),
}


def changed(config: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``registration`` with ``change`` applied, dropping a None client_secret."""
    result = registration(**change)
    for client in result["clients"]:
        if client.get("client_secret", "") is None:
            del client["client_secret"]
    return result


@pytest.mark.parametrize("case", CASES)
def test_a_registration_changed_since_authorize_gets_authlibs_answer(
    case: str,
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
    live_clock: FixedClock,
) -> None:
    pairs, change = CASES[case]
    before = services_for(registration(), redis_client, live_clock)
    parameters = validated(before, pairs())
    after = services_for(changed(registration(), change), redis_client, live_clock)
    who = Identity(email=JENNY, name="Jenny Rosen", auth_time=live_clock.now())

    checked, authlibs, used = both_ways(monkeypatch, after, redis_client, parameters, who)

    assert checked == authlibs
    # The check answers alone only where nothing it hands over applies.
    assert used == [case in CHECKED_ALONE]


CHECKED_ALONE = {
    "nothing changed",
    "another redirect URI registered beside it",
    "a scope no longer registered",
    "only openid left",
    "PKCE no longer required, a challenge sent anyway",
    "the client moved to a sector",
    "the client turned public",
}


def test_the_answers_differ_where_they_should(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    """The comparison above can tell answers apart: each kind of refusal, and a narrowed
    scope, is what the change calls for."""
    before = services_for(registration(), redis_client, live_clock)
    who = Identity(email=JENNY, name="Jenny Rosen", auth_time=live_clock.now())
    shop = validated(before, with_pkce("shop", SHOP_CALLBACK))
    legacy = validated(before, query("legacy", LEGACY_CALLBACK))

    gone = services_for(registration(shop=None), redis_client, live_clock)
    assert answer(gone, redis_client, shop, who)[:2] == ("page", "invalid_client")
    narrowed = services_for(
        registration(shop={"scopes": ["openid", "email"]}), redis_client, live_clock
    )
    record = answer(narrowed, redis_client, shop, who)[-1]
    assert record.scope == "openid email"
    pkce = services_for(registration(legacy={"require_pkce": True}), redis_client, live_clock)
    refused = dict(answer(pkce, redis_client, legacy, who)[4])
    assert refused["error"] == "invalid_request" and "code" not in refused
    assert refused["state"] == "s-1" and "iss" in refused
