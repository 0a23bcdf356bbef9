"""Authlib's requests client against the live provider, over real HTTP.

``OAuth2Session`` does what an RP built on it does: discovery, PKCE (S256), the code
exchange with client_secret_basic, userinfo, refresh and revocation (RFC 7009). The ID token
is validated the way Authlib's OpenID clients do it (joserfc against the JWKS fetched from
``jwks_uri``, then ``CodeIDToken``); the logout URL is built from discovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tests.conftest import JENNY
from tests.interop.conftest import InteropClient
from tests.interop.person import Person
from tests.live_server import LiveServer, RelyingPartyServer

# Authlib's OpenID clients allow this much clock difference.
LEEWAY = 120


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def metadata(interop_client: InteropClient) -> dict[str, Any]:
    """Discovery (OIDC Discovery 1.0 §4), fetched over HTTP as an RP starts."""
    answer = requests.get(interop_client.issuer + "/.well-known/openid-configuration", timeout=10)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture
def session(interop_client: InteropClient) -> Iterator[OAuth2Session]:
    with OAuth2Session(
        interop_client.client_id,
        interop_client.client_secret,
        scope=interop_client.scope,
        redirect_uri=interop_client.redirect_uri,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
        code_challenge_method="S256",
    ) as session:
        yield session


def validated_id_token(
    id_token: str, metadata: dict[str, Any], client_id: str, **params: str
) -> CodeIDToken:
    """Signature against the published JWKS, then iss, aud, exp, iat, nonce, at_hash."""
    key_set = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(
        id_token,
        key=key_set,
        registry=JWSRegistry(algorithms=metadata["id_token_signing_alg_values_supported"]),
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"values": [metadata["issuer"]]}},
        {"client_id": client_id, **params},
    )
    claims.validate(leeway=LEEWAY)
    return claims


def silent_request(session: OAuth2Session, metadata: dict[str, Any]) -> tuple[str, str]:
    """An authorization URL with prompt=none: answered by the SSO session or with an error."""
    return session.create_authorization_url(
        metadata["authorization_endpoint"],
        code_verifier=generate_token(48),
        nonce=generate_token(20),
        prompt="none",
    )


def test_authlib_signs_in_refreshes_revokes_and_logs_out(
    session: OAuth2Session,
    metadata: dict[str, Any],
    interop_client: InteropClient,
    live_server: LiveServer,
    relying_party_server: RelyingPartyServer,
    person: Person,
) -> None:
    assert metadata["issuer"] == live_server.url
    assert "S256" in metadata["code_challenge_methods_supported"]
    nonce = generate_token(20)
    verifier = generate_token(48)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    assert query_of(url)["code_challenge_method"] == "S256"

    landed = person.sign_in(url)

    assert landed.url.startswith(interop_client.redirect_uri + "?")
    assert relying_party_server.arrivals[-1].method == "GET"
    # RFC 9207 §2.4: the RP checks that the answer comes from the issuer it asked.
    assert query_of(landed.url)["iss"] == metadata["issuer"]
    token = session.fetch_token(
        metadata["token_endpoint"],
        authorization_response=landed.url,  # Authlib checks the state
        state=state,
        code_verifier=verifier,
    )

    claims = validated_id_token(
        token["id_token"],
        metadata,
        interop_client.client_id,
        nonce=nonce,
        access_token=token["access_token"],
    )
    assert claims["email"] == JENNY
    assert set(token["scope"].split()) == set(interop_client.scope.split())
    assert "refresh_token" in token
    userinfo = session.get(metadata["userinfo_endpoint"], timeout=10)
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]  # OIDC Core §5.3.2
    assert userinfo.json()["email"] == JENNY

    refreshed = session.refresh_token(
        metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )

    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    # OIDC Core §12.2: a refreshed ID token speaks of the same sign-in, without a nonce.
    again = validated_id_token(
        refreshed["id_token"],
        metadata,
        interop_client.client_id,
        access_token=refreshed["access_token"],
    )
    assert (again["iss"], again["sub"], again["aud"]) == (
        claims["iss"],
        claims["sub"],
        claims["aud"],
    )
    assert again["auth_time"] == claims["auth_time"]
    assert "nonce" not in again
    assert session.get(metadata["userinfo_endpoint"], timeout=10).json()["sub"] == claims["sub"]

    revoked = session.revoke_token(
        metadata["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )

    assert revoked.status_code == 200  # RFC 7009 §2.2
    with pytest.raises(OAuthError) as refused:
        session.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"

    assert "code" in query_of(person.visit(silent_request(session, metadata)[0]).url)  # SSO
    logout_state = generate_token(20)
    logout_url = add_params_to_uri(
        metadata["end_session_endpoint"],
        {
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": interop_client.post_logout_redirect_uri,
            "state": logout_state,
        },
    )
    after = person.log_out(logout_url)

    # RP-Initiated Logout 1.0 §3: back at the registered URI, with the RP's state.
    assert after.url.startswith(interop_client.post_logout_redirect_uri)
    assert query_of(after.url) == {"state": logout_state}
    # And the sign-in really ended: a silent request now needs a login (OIDC Core §3.1.2.6).
    silent, silent_state = silent_request(session, metadata)
    answer = query_of(person.visit(silent).url)
    assert answer["error"] == "login_required"
    assert answer["state"] == silent_state
