"""Who the tokens are about: registered clients as Authlib asks about them, `sub`, claims."""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any

from authlib.oauth2.rfc6749 import (
    ClientMixin,
    list_to_scope,
    scope_to_list,
)

from oidc_link.config import ClientSettings
from oidc_link.ids import digest, same
from oidc_link.models import Identity

# The authentication context of every sign-in here (OIDC Core §2 ``acr``): an SMS one-time
# code sent by Link to the phone of the account's email. No registry (RFC 6711 included)
# names SMS OTP, so this is our own stable name; ``amr`` (RFC 8176) says "otp" + "sms".
ACR_SMS_OTP = "urn:oidc-link:acr:sms-otp"
# The user claims each scope releases (OIDC Core §5.4).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_verified"),
    "profile": ("name",),
    "address": ("address",),
}


class OAuthClient(ClientMixin):
    """A registered relying party, as Authlib asks about it."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings

    def get_client_id(self) -> str:
        return self.settings.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OpenID Connect Core §3.1.2.1 makes redirect_uri required: never guess one.
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        if not scope:
            return None
        allowed = [s for s in scope_to_list(scope) if s in self.settings.scopes]
        return list_to_scope(allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 9700 §4.1.3): no prefix or pattern matching.
        return redirect_uri in self.settings.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Against every configured secret, each compared in constant time and none skipped
        after a match: the time taken says nothing about which secret, if any, matched."""
        presented = digest(client_secret)
        matched = False
        for expected in self.settings.secret_digests:
            matched |= same(presented, expected)
        return matched

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.settings.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        # Every client may refresh; whether it ever gets a refresh token is decided at
        # issue time (store/token_scripts.py REDEEM_CODE).
        return grant_type in ("authorization_code", "refresh_token")


def claims_for_scope(
    identity: Identity,
    scope: str,
    requested: Collection[str] = (),
    registered: Collection[str] = (),
) -> dict[str, Any]:
    """The user claims that the granted scopes allow (OIDC Core §5.4), plus the ones
    ``requested`` one by one through the ``claims`` parameter (§5.5) whose scope is among the
    client's ``registered`` scopes: a client never gets a claim its registration excludes."""
    released = released_claims(scope, frozenset(requested), tuple(registered))
    claims: dict[str, Any] = {}
    if "email" in released and identity.email is not None:
        claims["email"] = identity.email
    if "email_verified" in released:
        claims["email_verified"] = True  # Link verified this address with an SMS code.
    if "name" in released and identity.name is not None:
        claims["name"] = identity.name
    if "address" in released and identity.city:
        # OIDC Core §5.1.1: Link tells only the city, the address's ``locality``.
        claims["address"] = {"locality": identity.city}
    return claims


@functools.lru_cache(maxsize=256)
def released_claims(
    scope: str, requested: frozenset[str], registered: tuple[str, ...]
) -> frozenset[str]:
    """The claim names ``claims_for_scope`` releases: the same few scope strings and client
    registrations come back on every token, so each answer is worked out once."""
    released = {claim for s in scope_to_list(scope) or [] for claim in SCOPE_CLAIMS.get(s, ())}
    released |= {
        claim for s in registered for claim in SCOPE_CLAIMS.get(s, ()) if claim in requested
    }
    return frozenset(released)


def authentication_claims(identity: Identity) -> dict[str, Any]:
    """How and when the user signed in (OIDC Core §2): in every ID token, and at /userinfo
    when the ``claims`` parameter asks for them there."""
    return {"acr": ACR_SMS_OTP, "auth_time": identity.auth_time}
