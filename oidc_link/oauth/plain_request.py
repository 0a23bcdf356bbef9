"""The everyday code request, found valid without building Authlib's request and grant.

Nearly every /authorize request of a sign-in is the same shape: each of a few parameters
once (response_type=code, a registered client and redirect URI, an OpenID scope, an S256
challenge, maybe state, nonce, login_hint, ui_locales), no SSO session to consult. For
such a request every check Authlib's grant and our extensions run passes, so its answer is
known without them: the client and the parameters, nobody signed in. Anything outside that
narrow shape (a parameter more, repeated or empty, a session, PAR, a client that must push
or need not send PKCE, a server with a scope list or an issuer that is not https or
loopback) returns None here and goes through
Authlib's validation as before; tests/test_plain_request.py holds the answers to
``Provider.validate_authorization``'s full path on the variations of
tests/test_code_request_checks.py and on random requests.
"""

from __future__ import annotations

import logging
from typing import Any

from oidc_link.models import SsoSession
from oidc_link.oauth.grants import S256_CHALLENGE
from oidc_link.oauth.messages import ProtocolRequest, ValidAuthorization

# Authlib's own logger for the code request's check: its debug line is written as before.
_authlib_log = logging.getLogger("authlib.oauth2.rfc6749.grants.authorization_code")

# The parameters whose checks this module knows to pass, and two no check reads.
PLAIN_NAMES = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "login_hint",
        "ui_locales",
    }
)


def plain_authorization(
    server: Any, request: ProtocolRequest, session: SsoSession | None
) -> ValidAuthorization | None:
    """What ``Provider.validate_authorization`` answers for ``request`` (resolved: no
    pushed request left to take) when it is an everyday code request, else None.
    ``server``: the Provider, whose clients, scope list and issuer Authlib's checks read."""
    if session is not None or request.form or server.scopes_supported:
        return None
    if not server.secure_issuer:
        return None  # Authlib refuses a request to a URI that is not https or loopback
    pairs = request.query
    parameters = dict(pairs)
    if len(parameters) != len(pairs) or not PLAIN_NAMES.issuperset(parameters):
        return None
    if parameters.get("response_type") != "code":
        return None
    client_id = parameters.get("client_id")
    client = server.query_client(client_id) if client_id else None
    if client is None:
        return None
    settings = client.settings
    if settings.require_pushed_authorization_requests:
        return None
    redirect_uri = parameters.get("redirect_uri")
    if not redirect_uri or redirect_uri not in settings.redirect_uris:
        return None
    scope = parameters.get("scope")
    if not scope or "openid" not in scope.split():
        return None
    challenge = parameters.get("code_challenge")
    if (
        not challenge
        or parameters.get("code_challenge_method") != "S256"
        or S256_CHALLENGE.fullmatch(challenge) is None
    ):
        return None
    _authlib_log.debug("Validate authorization request of %r", client_id)
    return ValidAuthorization(settings, parameters)
