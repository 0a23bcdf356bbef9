"""The token endpoint's own shortcuts (session 26) against the library calls they replace,
on many inputs, edge cases included: the answer's JSON, base64url, the token pair and
the form's pairs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import secrets

import pytest
import redis
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from oidc_link.clock import FixedClock
from oidc_link.keys import _segment
from oidc_link.oauth.id_token import half_hash
from oidc_link.oauth.token_endpoint import token_json
from oidc_link.store import keyspace
from oidc_link.store.base import Outages
from oidc_link.store.tokens import TOKEN_SECRET_BYTES, TokenStore, _urlsafe
from oidc_link.web.protocol import _form_pairs

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
