"""The OIDF Config OP plan (``oidcc-config-certification-test-plan``), test by test.

The plan has one module, ``oidcc-discovery-endpoint-verification`` (OIDCCDiscoveryEndpoint
Verification); its conditions are checked here in the suite's order. The issuer check
(CheckDiscEndpointIssuer, OIDC Discovery §4.3) has its own test under the name the Basic
plan's reports use for it.

Every test runs twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask

from oidc_link.clock import FixedClock
from tests.conformance.suite import DISCOVERY_URL, SuiteClient
from tests.conftest import ISSUER
from tests.relying_party import Browser

# OIDC Discovery §3: REQUIRED provider metadata (token_endpoint: unless implicit only).
REQUIRED_METADATA = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
)
# RFC 7517 §9.3 / RFC 7518 §6: members that only a private or symmetric key has.
PRIVATE_KEY_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
# RFC 5646 language tag, the shape CheckDiscEndpointLocalesSyntax accepts.
LOCALE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
# RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def test_oidcc_discovery_endpoint_verification(app: Flask, live_clock: FixedClock) -> None:
    """Discovery has the values the specs require: endpoints, types, algs, JWKS."""
    # Spec: OIDC Discovery §3, §4; RFC 8414 §2.
    client = SuiteClient(app, live_clock)
    answer = client.fetch(DISCOVERY_URL)
    # EnsureDiscoveryEndpointResponseStatusCodeIs200, CheckDiscoveryEndpointReturnedJsonContentType
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    server = answer.get_json()

    for field in REQUIRED_METADATA:
        assert field in server, field
    # OIDCCCheckDiscEndpointResponseTypesSupported: the tested response type is offered.
    assert "code" in server["response_types_supported"]
    # CheckDiscEndpointDiscoveryUrl (OIDC Discovery §4)
    assert server["issuer"] + "/.well-known/openid-configuration" == DISCOVERY_URL
    # CheckDiscEndpointIssuerIsValidUrl (RFC 8414 §2): https, no query, no fragment.
    issuer = urlsplit(server["issuer"])
    assert issuer.scheme == "https" and issuer.netloc
    assert not issuer.query and not issuer.fragment
    # CheckDiscEndpointSubjectTypesSupported
    assert server["subject_types_supported"]
    assert set(server["subject_types_supported"]) <= {"public", "pairwise"}
    # OIDCCCheckDiscEndpointIdTokenSigningAlgValuesSupported: RS256 MUST be included.
    assert "RS256" in server["id_token_signing_alg_values_supported"]
    # CheckDiscEndpointAuthorizationEndpoint / TokenEndpoint / UserinfoEndpoint
    for field in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
        assert server[field].startswith("https://"), field
    assert "registration_endpoint" not in server  # static registration only
    # CheckJwksUri, FetchServerKeys, ValidateServerJWKs, CheckForKeyIdInServerJWKs,
    # EnsureServerJwksDoesNotContainPrivateOrSymmetricKeys (RFC 7518 §6.3.2.1).
    assert server["jwks_uri"].startswith("https://")
    jwks = client.fetch(server["jwks_uri"])
    assert jwks.status_code == 200 and jwks.mimetype == "application/json"
    keys = jwks.get_json()["keys"]
    assert keys
    kids = [key["kid"] for key in keys]
    assert len(set(kids)) == len(kids)
    for key in keys:
        assert key["kty"] in ("RSA", "EC", "OKP")
        assert not PRIVATE_KEY_MEMBERS & set(key), key["kid"]
    # CheckDiscEndpointRequestParameterSupported / ...RequestUriParameterSupported /
    # CheckDiscEndpointClaimsParameterSupported: booleans when present.
    for field in (
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "claims_parameter_supported",
    ):
        assert isinstance(server.get(field, False), bool), field
    # OIDCCCheckDiscEndpointClaimsSupported: recommended, and lists at least sub.
    assert "sub" in server["claims_supported"]
    # OIDCCCheckDiscEndpointGrantTypesSupported: the code grant is offered.
    assert "authorization_code" in server.get("grant_types_supported", ["authorization_code"])
    # CheckDiscEndpointScopesSupportedContainsOpenId, CheckDiscEndpointScopesSupportedSyntax
    assert "openid" in server["scopes_supported"]
    assert all(SCOPE_TOKEN.match(scope) for scope in server["scopes_supported"])
    # CheckDiscEndpointLocalesSyntax (RFC 8414 §2)
    for field in ("ui_locales_supported", "claims_locales_supported"):
        assert all(LOCALE.match(tag) for tag in server.get(field, [])), field
    # CheckDiscEndpointAllEndpointsAreHttps: every *_endpoint and jwks_uri.
    for field, value in server.items():
        if field.endswith("_endpoint") or field == "jwks_uri":
            assert value.startswith("https://"), field
    # EnsureServerConfigurationCodeChallengeMethodsSupportedIsAnArray (RFC 8414 §2)
    assert isinstance(server["code_challenge_methods_supported"], list)


def test_oidcc_discovery_issuer_not_matching_config(
    app: Flask, browser: Browser, console: list[str], live_clock: FixedClock
) -> None:
    """issuer equals the URL discovery was fetched from, and the ID tokens' iss."""
    # Spec: OIDC Discovery §4.3.
    client = SuiteClient(app, live_clock)
    fetched_from = DISCOVERY_URL

    issuer = client.fetch(fetched_from).get_json()["issuer"]

    assert fetched_from == issuer + "/.well-known/openid-configuration"
    assert issuer == ISSUER
    assert not issuer.endswith("/")
    assert client.code_flow(browser, console).claims["iss"] == issuer
