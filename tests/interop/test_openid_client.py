"""Node's openid-client v6, a library we did not write, against the live provider.

The Node relying party (node/relying_party.mjs) does the protocol; Python plays the person
on the hosted pages and checks what the library accepted, refused and built.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import JENNY
from tests.interop.conftest import InteropClient
from tests.interop.person import Person
from tests.live_server import LiveServer, RelyingPartyServer

Step = Callable[..., dict[str, Any]]


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_openid_client_discovers_the_provider_and_asks_with_pkce_state_and_nonce(
    openid_client: Step, interop_client: InteropClient
) -> None:
    started = openid_client("authorize")

    issuer = interop_client.issuer
    assert started["discovered"] == {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/jwks.json",
        "end_session_endpoint": issuer + "/logout",
    }
    asked = query_of(started["authorization_url"])
    assert started["authorization_url"].startswith(issuer + "/authorize?")
    assert asked["client_id"] == interop_client.client_id
    assert asked["response_type"] == "code"
    assert asked["redirect_uri"] == interop_client.redirect_uri
    assert asked["scope"] == interop_client.scope
    assert asked["code_challenge_method"] == "S256"
    assert asked["state"] == started["state"]
    assert asked["nonce"] == started["nonce"]


def test_openid_client_signs_in_refreshes_revokes_and_logs_out(
    openid_client: Step,
    interop_client: InteropClient,
    live_server: LiveServer,
    relying_party_server: RelyingPartyServer,
    person: Person,
) -> None:
    started = openid_client("authorize")

    landed = person.sign_in(started["authorization_url"])

    # The browser came back to the RP's redirect URI with the answer in the query.
    assert landed.url.startswith(interop_client.redirect_uri + "?")
    arrival = relying_party_server.arrivals[-1]
    assert (arrival.method, arrival.path) == ("GET", "/callback")
    assert arrival.query["iss"] == live_server.url  # RFC 9207
    assert arrival.query["state"] == started["state"]

    redeemed = openid_client(
        "redeem",
        callback_url=landed.url,
        code_verifier=started["code_verifier"],
        state=started["state"],
        nonce=started["nonce"],
    )

    # The library validated the ID token (JWKS signature, iss, aud, exp/iat, nonce) and PKCE.
    claims = redeemed["id_token_claims"]
    assert claims["iss"] == live_server.url
    assert claims["aud"] == interop_client.client_id or claims["aud"] == [interop_client.client_id]
    assert claims["nonce"] == started["nonce"]
    assert claims["email"] == JENNY
    assert claims["email_verified"] is True
    assert redeemed["token_type"].lower() == "bearer"
    assert redeemed["expires_in"] > 0
    assert set(redeemed["scope"].split()) == set(interop_client.scope.split())
    assert redeemed["has_refresh_token"]  # offline_access was asked for and allowed
    # Userinfo speaks of the same person (the library checked sub; so do we).
    userinfo = redeemed["userinfo"]
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["email"] == JENNY
    assert userinfo["name"] == "Jenny Rosen"
    # A refresh gives new tokens, rotates the refresh token and a new ID token for the same
    # person (OIDC Core §12.2), which the library validated as well.
    refreshed = redeemed["refreshed"]
    assert refreshed["access_token_changed"]
    assert refreshed["refresh_token_rotated"]
    assert refreshed["id_token_claims"]["sub"] == claims["sub"]
    assert refreshed["id_token_claims"]["iss"] == live_server.url
    # The revoked refresh token (RFC 7009) is refused from then on.
    refusal = redeemed["revoked_refresh_token_refused"]
    assert refusal is not None
    assert (refusal["error"], refusal["status"]) == ("invalid_grant", 400)

    logout_state = secrets.token_urlsafe(16)
    ended = openid_client(
        "end_session",
        id_token=redeemed["id_token"],
        post_logout_redirect_uri=interop_client.post_logout_redirect_uri,
        logout_state=logout_state,
    )

    end_session_url = ended["end_session_url"]
    assert end_session_url.startswith(live_server.url + "/logout?")
    assert query_of(end_session_url)["client_id"] == interop_client.client_id
    after = person.log_out(end_session_url)
    # RP-Initiated Logout 1.0 §3: back at the registered URI, with the RP's state.
    assert after.url.startswith(interop_client.post_logout_redirect_uri)
    assert query_of(after.url) == {"state": logout_state}
    arrival = relying_party_server.arrivals[-1]
    assert (arrival.method, arrival.path) == ("GET", "/logged-out")
    assert arrival.query == {"state": logout_state}
