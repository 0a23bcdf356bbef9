"""The everyday code request found valid without Authlib's objects (oauth/plain_request.py)
against ``Provider.validate_authorization``'s full path (Authlib's grant and our
extensions): where the shortcut answers, the same answer; where it does not, the full path
answers as before. The faults of tests/test_code_request_checks.py, one at a time and two
at a time, on five clients (one that must push its requests, one that need not send PKCE),
and random requests built from valid, empty, odd and repeated parameters."""

from __future__ import annotations

import itertools
import random
from typing import Any
from unittest import mock

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.models import Identity, SsoSession
from oidc_link.oauth import Provider
from oidc_link.oauth.messages import AuthorizationPageError, ProtocolRequest, ValidAuthorization
from oidc_link.oauth.par import ResolvedAuthorizationRequest
from oidc_link.oauth.plain_request import PLAIN_NAMES, plain_authorization
from oidc_link.services import build_services
from tests.conftest import JENNY, SHOP_SECRET, provider_config
from tests.test_code_request_checks import CHALLENGE, FAULTS, VALID, _request

PUSHED_CALLBACK = "https://pushed.example.test/cb"
LEGACY_CALLBACK = "https://legacy.example.test/cb"
EXTRA_VALID = {
    "pushed": [
        ("response_type", "code"),
        ("client_id", "pushed"),
        ("redirect_uri", PUSHED_CALLBACK),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ],
    "legacy": [
        ("response_type", "code"),
        ("client_id", "legacy"),
        ("redirect_uri", LEGACY_CALLBACK),
        ("scope", "openid email"),
        ("state", "s"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ],
}
ALL_VALID = {**VALID, **EXTRA_VALID}


@pytest.fixture
def plain_settings() -> Settings:
    config = provider_config()
    clients = list(config["clients"])  # type: ignore[call-overload]
    clients.append(
        {
            "client_id": "pushed",
            "client_secret": "pushed-secret-0123456789abcdef-0123",
            "redirect_uris": [PUSHED_CALLBACK],
            "require_pushed_authorization_requests": True,
        }
    )
    clients.append(
        {
            "client_id": "legacy",
            "client_secret": "legacy-secret-0123456789abcdef-0123",
            "redirect_uris": [LEGACY_CALLBACK],
            "require_pkce": False,
        }
    )
    config["clients"] = clients
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


@pytest.fixture
def provider(plain_settings: Settings, embedded_redis: redis.Redis, clock: FixedClock) -> Provider:
    services = build_services(
        plain_settings, clock=clock, redis_client=embedded_redis, announce=lambda _: None
    )
    return services.provider


def _full(provider: Provider, asked: ProtocolRequest, session: SsoSession | None) -> Any:
    """The full path's answer, the shortcut switched off: the answer or the error's text."""
    with mock.patch("oidc_link.oauth.plain_authorization", lambda *_: None):
        return _answer(provider, asked, session)


def _answer(provider: Provider, asked: ProtocolRequest, session: SsoSession | None) -> Any:
    try:
        outcome = provider.validate_authorization(asked, session)
    except AuthorizationPageError as error:
        return ("page", type(error.error), error.description)
    if isinstance(outcome, ValidAuthorization):
        return ("valid", outcome.client, outcome.parameters, outcome.signed_in)
    return ("answer", outcome.status, outcome.body, outcome.headers)


def _compare(provider: Provider, asked: ProtocolRequest) -> bool:
    """Same answer both ways; True when the shortcut gave it."""
    resolved = provider.resolve_authorization_request(asked)
    plain = plain_authorization(provider, resolved, None)
    full = _full(provider, asked, None)
    if plain is not None:
        assert full == ("valid", plain.client, plain.parameters, plain.signed_in)
        assert plain.signed_in is None
    assert _answer(provider, asked, None) == full
    return plain is not None


def _with(client: str, faults: list[tuple[str, str | None]]) -> ProtocolRequest:
    with mock.patch.dict(VALID, EXTRA_VALID):
        return _request(client, faults)


@pytest.mark.parametrize(("client", "fault"), list(itertools.product(ALL_VALID, FAULTS)))
def test_one_fault_gets_the_full_paths_answer(
    provider: Provider, client: str, fault: list[tuple[str, str | None]]
) -> None:
    _compare(provider, _with(client, fault))


def test_two_faults_at_once_get_the_full_paths_answer(provider: Provider) -> None:
    pairs = list(itertools.combinations(FAULTS[1:], 2))
    random.Random(16).shuffle(pairs)  # noqa: S311 - a fixed, repeatable order
    for client in ALL_VALID:
        for first, second in pairs[:150]:
            _compare(provider, _with(client, first + second))


def test_the_everyday_requests_take_the_shortcut(provider: Provider) -> None:
    for client in ("shop", "spa", "blog", "legacy"):
        assert _compare(provider, _with(client, []))
        assert _compare(provider, _with(client, [("login_hint", JENNY), ("ui_locales", "fr")]))
    # PAR's client must push; the legacy client without a challenge is Authlib's to judge.
    assert not _compare(provider, _with("pushed", []))
    assert not _compare(
        provider, _with("legacy", [("code_challenge", None), ("code_challenge_method", None)])
    )


def test_no_shortcut_with_a_session_a_form_a_scope_list_or_a_pushed_request(
    provider: Provider,
) -> None:
    asked = _with("shop", [])
    resolved = provider.resolve_authorization_request(asked)
    session = SsoSession(
        sid="sid",
        identity=Identity(email=JENNY, name=None, auth_time=0),
        created_at=0,
        absolute_expiry=10**10,
        idle_expiry=10**10,
    )
    assert plain_authorization(provider, resolved, session) is None
    posted = ResolvedAuthorizationRequest("POST", "/authorize", [], asked.query)
    assert plain_authorization(provider, posted, None) is None
    assert _answer(provider, posted, None) == _full(provider, posted, None)
    marked = _with("shop", [("oidc_link:pushed", "1")])
    assert plain_authorization(provider, ProtocolRequest("GET", "/a", marked.query), None) is None
    with mock.patch.object(provider, "scopes_supported", ["openid"]):
        assert plain_authorization(provider, resolved, None) is None
    with mock.patch.object(provider, "secure_issuer", False):
        assert plain_authorization(provider, resolved, None) is None
        assert _answer(provider, asked, None) == _full(provider, asked, None)


def test_random_requests_get_the_full_paths_answer(provider: Provider) -> None:
    rng = random.Random(27)  # noqa: S311 - repeatable test data
    values: dict[str, list[str]] = {
        "response_type": ["code", "code", "Code", "code ", "token", ""],
        "client_id": ["shop", "spa", "blog", "legacy", "pushed", "", "Shop", "nobody"],
        # (each client's own redirect URI and scope are its valid request's)
        "redirect_uri": [
            "https://shop.example.test/callback",
            "http://127.0.0.1:3000/callback",
            "https://blog.example.test/auth",
            LEGACY_CALLBACK,
            PUSHED_CALLBACK,
            "https://shop.example.test/callback/",
            "",
        ],
        "scope": ["openid", "openid email", " openid ", "email", "", "openid\tprofile", "OPENID"],
        "state": ["s", "", "a b"],
        "nonce": ["n", ""],
        "code_challenge": [CHALLENGE, CHALLENGE + "\n", CHALLENGE[:-1], "", "a" * 43, "~" * 43],
        "code_challenge_method": ["S256", "plain", "", "s256"],
        "login_hint": [JENNY, ""],
        "ui_locales": ["fr", ""],
        "prompt": ["login", "none", ""],
        "max_age": ["0", "x"],
        "claims": ["{}", "["],
        "response_mode": ["query", "fragment"],
        "display": ["page"],
    }
    names = sorted(values)
    assert set(names) >= PLAIN_NAMES
    taken = 0
    for _ in range(2000):
        chosen = [n for n in names if n in PLAIN_NAMES and rng.random() < 0.93]
        chosen += [n for n in names if n not in PLAIN_NAMES and rng.random() < 0.05]
        rng.shuffle(chosen)
        if rng.random() < 0.05 and chosen:
            chosen.append(rng.choice(chosen))  # a name repeated
        client = rng.choice(sorted(ALL_VALID))
        own = dict(ALL_VALID[client])
        # Mostly the client's own valid value, else any of the name's values.
        pairs = [
            (n, own[n] if n in own and rng.random() < 0.85 else rng.choice(values[n]))
            for n in chosen
        ]
        taken += _compare(provider, ProtocolRequest("GET", "/authorize", pairs))
    assert taken > 300  # the shortcut was tried on valid requests too, not only refused ones
