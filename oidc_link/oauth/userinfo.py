"""The UserInfo endpoint's claims (OIDC Core §5.3): what an access token may tell its client.

web/protocol.py reads the bearer token and answers. Authlib's UserInfoEndpoint does not fit:
it takes the token from a framework's ResourceProtector (oauth/ knows no Flask), and its
generate_user_info(user, scope) has no room for the ``claims`` parameter (OIDC Core §5.5).
"""

from __future__ import annotations

from typing import Any

from oidc_link.config import Settings
from oidc_link.oauth.claims import authentication_claims, claims_for_scope
from oidc_link.oauth.claims_request import USERINFO, parse_claims_request
from oidc_link.oauth.messages import InvalidAccessTokenError
from oidc_link.oauth.tokens import TokenLifecycle


class UserInfo:
    def __init__(self, settings: Settings, tokens: TokenLifecycle) -> None:
        self._settings = settings
        self._tokens = tokens

    def claims(self, access_token: str | None) -> dict[str, Any]:
        """The claims for a bearer token; InvalidAccessTokenError when it is missing,
        unknown, expired or revoked (RFC 6750 §3.1)."""
        found = self._tokens.find_access_token(access_token) if access_token else None
        if found is None or found.expired or found.revoked:
            raise InvalidAccessTokenError(presented=bool(access_token))
        record = found.record
        # OIDC Core §5.5: claims the code's ``claims`` parameter asked for at /userinfo.
        requested = parse_claims_request(record.claims).names(USERINFO)
        client = self._settings.client(record.client_id)
        registered = client.scopes if client else ()
        return {
            "sub": record.subject,
            **claims_for_scope(record.identity, record.scope, requested, registered),
            **{
                name: value
                for name, value in authentication_claims(record.identity).items()
                if name in requested
            },
        }
