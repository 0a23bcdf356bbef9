"""A stored authorization request issued its code without Authlib's whole validation again.

/authorize validated the request (Authlib's grant, its hooks and ours) before the sign-in
began, and the flow kept its parameters as validated. When the person has signed in, what
can have changed since is the client's registration, not the parameters: this module checks
what the registration decides, in the terms Authlib's validation decides it, and hands back
the grant Authlib's ``get_consent_grant`` would have. Anything that would not pass, or that
depends on who signed in (a ``claims`` request naming a ``sub``), gets None: the caller then
runs Authlib's validation, whose error is the answer, as before
(tests/test_stored_request.py: each change of registration, both ways).
"""

from __future__ import annotations

from typing import Protocol

from authlib.oauth2 import OAuth2Error

from oidc_link.models import Identity
from oidc_link.oauth.claims import OAuthClient
from oidc_link.oauth.grants import CodeGrant, GrantServer
from oidc_link.oauth.messages import AuthlibRequest
from oidc_link.oauth.par import PUSHED_MARKER


class RegisteredServer(GrantServer, Protocol):
    """What the check asks of the Provider besides the code grant's needs."""

    def query_client(self, client_id: str) -> OAuthClient | None: ...

    def validate_requested_scope(self, scope: str | None) -> None: ...


def grant_if_still_registered(
    server: RegisteredServer, request: AuthlibRequest, identity: Identity | None
) -> CodeGrant | None:
    """The code grant for ``request``, validated as ``get_consent_grant`` would for
    ``identity``, when the client's registration still allows the request as it stands;
    None when anything would not pass, and for a denial (no ``identity``: Authlib's
    validation then answers, as it does for one that signed in nobody)."""
    if identity is None:
        return None
    payload = request.payload
    data = payload.data
    client = server.query_client(data.get("client_id"))
    if client is None:  # no longer registered: invalid_client, a page
        return None
    # validate_authorization_redirect_uri: the URI is required here (OIDC Core §3.1.2.1, no
    # default) and must still be registered, else a page.
    redirect_uri = data.get("redirect_uri")
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        return None
    if not CodeGrant.check_authorization_endpoint(request) or not client.check_response_type(
        payload.response_type
    ):
        return None
    try:
        server.validate_requested_scope(payload.scope)
    except OAuth2Error:
        return None
    # The scope the code carries: the requested scopes the registration still allows.
    scope = client.get_allowed_scope(payload.scope)
    if scope is None:
        return None
    registered = client.settings
    # S256CodeChallenge and LinkOpenIDCode: PKCE and PAR as the registration now requires.
    if registered.require_pkce and not data.get("code_challenge"):
        return None
    if registered.require_pushed_authorization_requests and PUSHED_MARKER not in data:
        return None
    # A claims request may name the sub it is for: LinkOpenIDCode compares it with this
    # identity's, which /authorize could not (no one had signed in yet).
    if data.get("claims"):
        return None
    request.user = identity
    request.client = client
    request.scope = scope
    grant = CodeGrant(request, server)
    grant.redirect_uri = redirect_uri
    return grant
