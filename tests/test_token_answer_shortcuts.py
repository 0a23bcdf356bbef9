"""The token endpoint's own shortcuts (session 26) against the library calls they replace,
on many inputs, edge cases included: the answer's JSON, base64url, the token pair, the
form's pairs and HTTP Basic client authentication."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import replace

import pytest
import redis
from authlib.oauth2 import OAuth2Error
from flask import Flask
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from oidc_link.clock import FixedClock
from oidc_link.config import Settings
from oidc_link.keys import _segment
from oidc_link.oauth.claims import OAuthClient
from oidc_link.oauth.grants import TOKEN_AUTH_METHODS
from oidc_link.oauth.id_token import half_hash
from oidc_link.oauth.messages import AuthlibRequest, ProtocolRequest, ProtocolResponse
from oidc_link.oauth.token_endpoint import TOKEN_RESPONSE_HEADERS, token_json
from oidc_link.oauth.tokens import CLIENT_AUTH_METHODS
from oidc_link.services import build_services
from oidc_link.store import keyspace
from oidc_link.store.base import Outages
from oidc_link.store.tokens import TOKEN_SECRET_BYTES, TokenStore, _urlsafe
from oidc_link.web.protocol import _form_pairs, to_flask, token_answer
from tests.conftest import ISSUER, POST_SECRET, SHOP_SECRET

AWKWARD = [
    "",
    " ",
    '"',
    "\\",
    "\x00",
    "\x1f",
    "\x7f",
    "é",
    "日本",
    "\U0001f600",
    "/",
    "</script>",
]
# JSON writes a lone surrogate as an escape; a key's digest cannot encode one.
UNPAIRED = "\ud800"


def _random_text(rng: random.Random) -> str:
    alphabet = [*AWKWARD, "a", "Z", "0", "-", "_", ".", "~", "+", "=", "%", "&"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def test_token_json_writes_what_json_dumps_writes() -> None:
    rng = random.Random(26)  # noqa: S311 - repeatable test input, no secret
    cases: list[dict[str, object]] = [
        {},
        {"token_type": "Bearer", "access_token": "fam_x.y", "expires_in": 3600},
        {"expires_in": 0, "n": -1, "big": 10**30, "scope": ""},
        {text: text for text in [*AWKWARD, UNPAIRED]},
    ]
    for _ in range(500):
        cases.append(
            {
                _random_text(rng): (
                    _random_text(rng) if rng.random() < 0.7 else rng.randrange(-(10**12), 10**12)
                )
                for _ in range(rng.randrange(0, 8))
            }
        )
    for token in cases:
        assert token_json(token) == json.dumps(token)


@pytest.mark.parametrize(
    "odd", [True, False, None, 1.5, float("inf"), ["a"], {"a": 1}, type("Str", (str,), {})("s")]
)
def test_token_json_hands_any_other_member_to_json_dumps(odd: object) -> None:
    token = {"access_token": "a", "odd": odd}
    try:
        expected = json.dumps(token)
    except ValueError:
        pytest.skip("json.dumps refuses it too")
    assert token_json(token) == expected


def test_base64url_without_padding_matches_the_base64_module() -> None:
    for size in [*range(0, 80), 255, 256, 1024]:
        for _ in range(5):
            raw = os.urandom(size)
            expected = base64.urlsafe_b64encode(raw).rstrip(b"=")
            assert _segment(raw) == expected
            assert _urlsafe(raw) == expected.decode()
    # The alphabet's last two characters, where base64 and base64url differ.
    assert _segment(b"\xfb\xff\xbf") == base64.urlsafe_b64encode(b"\xfb\xff\xbf")


def test_half_hash_matches_its_base64_module_form() -> None:
    for alg in ["RS256", "ES256", "PS384", "RS512", "EdDSA"]:
        for value in ["", "a", "fam_x." + secrets.token_urlsafe(32), "é" * 40]:
            hashed = {"256": "sha256", "384": "sha384", "512": "sha512"}.get(alg[2:], "sha512")
            digest = hashlib.new(hashed, value.encode()).digest()
            expected = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
            assert half_hash(value, alg) == expected


@pytest.mark.parametrize("tagged", [True, False])
def test_a_token_pair_has_the_shape_of_two_new_tokens(
    tagged: bool, redis_client: redis.Redis, clock: FixedClock
) -> None:
    tokens = TokenStore(redis_client, clock, Outages(clock), tagged=tagged)
    family_id = keyspace.code_family("some code")
    shape = re.compile(r"[A-Za-z0-9_-]{43}")
    seen = set()
    for _ in range(200):
        pair = tokens.new_token_pair(family_id)
        singles = (tokens.new_token(family_id), tokens.new_token(family_id))
        for token, single in zip(pair, singles, strict=True):
            family, mark, secret = token.rpartition(keyspace.TOKEN_FAMILY_MARK)
            single_family, _, single_secret = single.rpartition(keyspace.TOKEN_FAMILY_MARK)
            assert (family, mark) == ((family_id, ".") if tagged else ("", ""))
            assert family == single_family
            assert shape.fullmatch(secret) and len(secret) == len(single_secret)
            assert keyspace.token_family(token) == keyspace.token_family(single)
            assert len(base64.urlsafe_b64decode(secret + "=")) == TOKEN_SECRET_BYTES
        seen.update(pair)
    assert len(seen) == 400  # the two halves of one draw are two tokens


def test_the_form_pairs_are_items_multi() -> None:
    rng = random.Random(7)  # noqa: S311 - repeatable test input, no secret
    for _ in range(300):
        pairs = [
            (rng.choice(["a", "b", "grant_type", "code", _random_text(rng)]), _random_text(rng))
            for _ in range(rng.randrange(0, 9))
        ]
        for kind in (ImmutableMultiDict, MultiDict):
            form = kind(pairs)
            assert _form_pairs(form) == list(form.items(multi=True))


def _basic(credentials: bytes | str) -> str:
    raw = credentials.encode() if isinstance(credentials, str) else credentials
    return "Basic " + base64.b64encode(raw).decode()


AUTHORIZATIONS = [
    None,
    _basic(f"shop:{SHOP_SECRET}"),
    _basic(f"shop:{SHOP_SECRET}x"),
    _basic("shop:"),
    _basic(f":{SHOP_SECRET}"),
    _basic("shop"),
    _basic(f"nobody:{SHOP_SECRET}"),
    _basic(f"blog:{POST_SECRET}"),
    _basic(f"spa:{SHOP_SECRET}"),
    _basic(f"sh%6Fp:{SHOP_SECRET}"),  # percent-encoded, as RFC 6749 §2.3.1 writes it
    _basic("shop:" + SHOP_SECRET.replace("-", "%2D")),
    _basic(b"shop:\xff\xfe"),  # not UTF-8
    "Basic " + base64.b64encode(f"shop:{SHOP_SECRET}".encode()).decode().rstrip("="),
    "basic " + base64.b64encode(f"shop:{SHOP_SECRET}".encode()).decode(),
    "BASIC  " + base64.b64encode(f"shop:{SHOP_SECRET}".encode()).decode(),
    "Basic !!!",
    "Basic",
    "Bearer abc",
]
FORMS: list[list[tuple[str, str]]] = [
    [],
    [("client_id", "shop")],
    [("client_id", "blog")],
    [("client_id", "nobody")],
    [("client_id", "")],
    [("client_id", "blog"), ("client_secret", POST_SECRET)],
    [("client_id", "spa")],
]


def _outcome(
    authenticate: Callable[[AuthlibRequest], OAuthClient], pairs: list, headers: dict
) -> tuple:
    request = AuthlibRequest(
        ISSUER, ProtocolRequest("POST", "/token", form=pairs, headers=headers), secure_issuer=True
    )
    try:
        client = authenticate(request)
    except OAuth2Error as error:
        return ("refused", error.error, error.get_error_description(), error.status_code)
    except UnicodeDecodeError as error:
        return ("raised", type(error))
    if client is None:
        return ("none",)
    return ("client", client.get_client_id(), request.auth_method, request.client)


@pytest.mark.parametrize(
    "methods", [TOKEN_AUTH_METHODS, CLIENT_AUTH_METHODS, ["none", "client_secret_basic"]]
)
def test_http_basic_s_shortcut_authenticates_as_authlib_does(
    methods: list[str], settings: Settings, redis_client: redis.Redis, clock: FixedClock
) -> None:
    """TokenEndpoint._client (its HTTP Basic shortcut first) against the Provider's client
    authentication (Authlib's) with the same grant check, on every pairing of a header and
    a form: the same client and method, or the same error."""
    provider = build_services(settings, clock=clock, redis_client=redis_client).provider
    endpoint = provider.token_endpoint

    def authlib(request: AuthlibRequest) -> OAuthClient:
        client = provider.authenticate_client(request, methods, "token")
        request.client = client
        return client

    shortcuts = 0
    for authorization in AUTHORIZATIONS:
        headers = {} if authorization is None else {"Authorization": authorization}
        for pairs in FORMS:
            ours = _outcome(
                lambda request: endpoint._client(request, methods, "authorization_code"),
                pairs,
                headers,
            )
            assert ours == _outcome(authlib, pairs, headers), (authorization, pairs)
            found = _outcome(
                lambda request: endpoint._basic_client(request, methods), pairs, headers
            )
            shortcuts += found[0] == "client"
    # The shortcut did answer the well-formed ones (only when Basic is tried first).
    assert (shortcuts > 0) == (methods[0] == "client_secret_basic")


@pytest.mark.parametrize(
    "answer",
    [
        ProtocolResponse(200, '{"access_token": "a"}', list(TOKEN_RESPONSE_HEADERS)),
        ProtocolResponse(200, {"access_token": "a", "expires_in": 1}, list(TOKEN_RESPONSE_HEADERS)),
        ProtocolResponse(
            400,
            {"error": "invalid_grant"},
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("Pragma", "no-cache"),
            ],
        ),
        ProtocolResponse(
            401,
            {"error": "invalid_client"},
            [*TOKEN_RESPONSE_HEADERS, ("WWW-Authenticate", 'Basic error="invalid_client"')],
        ),
        ProtocolResponse(
            503, "unavailable", [("Content-Type", "text/plain"), ("Retry-After", "5")]
        ),
        ProtocolResponse(200, "x", list(TOKEN_RESPONSE_HEADERS[:2])),
    ],
)
def test_the_token_view_s_answer_is_to_flask_s(answer: ProtocolResponse, app: Flask) -> None:
    with app.test_request_context("/token", method="POST"):
        ours = token_answer(replace(answer, headers=list(answer.headers)))
        theirs = app.make_response(to_flask(answer))
        assert type(ours) is type(theirs) is app.response_class
        assert ours.status == theirs.status
        assert ours.headers.to_wsgi_list() == theirs.headers.to_wsgi_list()
        assert ours.get_data() == theirs.get_data()
