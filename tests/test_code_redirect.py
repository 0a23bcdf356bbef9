"""The code's redirect as oauth/code_redirect.py builds it in one pass: the same Location,
byte for byte, as Authlib's ``add_params_to_uri`` called twice (the code and ``state``, as
``create_authorization_response`` adds them, then ``iss``, as ``Provider`` added it), on
registered-looking URIs with and without a query of their own and on awkward values."""

from __future__ import annotations

import random
import secrets

import pytest
from authlib.common.urls import add_params_to_uri

from oidc_link.oauth.code_redirect import code_location

REDIRECT_URIS = [
    "https://rp.example/cb",
    "https://rp.example",
    "https://rp.example/",
    "https://rp.example:8443/a/b/cb",
    "http://127.0.0.1:8001/callback",
    "http://[::1]:9000/cb",
    "http://localhost/cb",
    "https://rp.example/cb?",
    "https://rp.example/cb?tenant=acme",
    "https://rp.example/cb?a=1&b=2&a=3",
    "https://rp.example/cb?flag",
    "https://rp.example/cb?flag&x=",
    "https://rp.example/cb?=",
    "https://rp.example/cb?&&a=1&&",
    "https://rp.example/cb?q=a+b&r=a%20b&s=%7e~",
    "https://rp.example/cb?next=%2Fhome%3Fx%3D1",
    "https://rp.example/cb?bad=%zz&half=%4",
    "https://rp.example/cb?utf=%C3%A9&raw=é&bad=%FF",
    "https://rp.example/cb?x=a;b",
    "https://rp.example/path;params?x=1",
    "https://rp.example/p%20q/cb",
    "https://rp.example/é/cb",
    "https://user:pw@rp.example/cb",
    "https://RP.Example/CB",
    "com.example.app://rp.example/cb",
]

STATES = [
    None,
    "",
    "s",
    "xyz",
    "a b",
    "a+b",
    "a&b=c",
    "#frag",
    "%41",
    "~._-",
    "é",
    "日本語",
    "👍",
    "tab\there",
    "new\nline",
    "/?:@!$'()*,;",
    "x" * 500,
]

ISSUERS = [
    "https://login.example.com",
    "https://login.example.com/",
    "https://login.example.com/tenant/a",
    "http://127.0.0.1:8000",
    "https://login.example.com:8443/x?y",
]


def twice(uri: str, code: str, state: str | None, issuer: str) -> str:
    params = [("code", code)]
    if state:
        params.append(("state", state))
    return add_params_to_uri(add_params_to_uri(uri, params), [("iss", issuer)])


@pytest.mark.parametrize("uri", REDIRECT_URIS)
@pytest.mark.parametrize("issuer", ISSUERS)
def test_the_one_pass_redirect_is_authlibs_two_passes(uri: str, issuer: str) -> None:
    for state in STATES:
        code = secrets.token_urlsafe(36)
        assert code_location(uri, code, state, issuer) == twice(uri, code, state, issuer)


def test_random_values_give_the_same_location() -> None:
    rng = random.Random(20261208)  # noqa: S311 - repeatable test input, no secret
    alphabet = "abcAZ09-._~ +&=?#%/;:@!$'()*,é日👍\t"
    for _ in range(2000):
        uri = rng.choice(REDIRECT_URIS)
        if rng.random() < 0.5:
            extra = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
            uri += ("&" if "?" in uri else "?") + extra.replace("#", "")
        state = "".join(rng.choice(alphabet) for _ in range(rng.randrange(20)))
        code = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60)))
        issuer = rng.choice(ISSUERS)
        assert code_location(uri, code, state, issuer) == twice(uri, code, state, issuer)


def test_the_parameters_follow_the_uris_own_query_in_order() -> None:
    location = code_location(
        "https://rp.example/cb?tenant=acme", "C0de", "s t", "https://op.example"
    )

    assert location == (
        "https://rp.example/cb?tenant=acme&code=C0de&state=s+t&iss=https%3A%2F%2Fop.example"
    )
