"""Single sign-on at /authorize: whether the browser's SSO session may answer an
authorization request without a new sign-in (OIDC Core §3.1.2.1). Decides nothing else:
consent and the code are sign_in.py's.
"""

from __future__ import annotations

from oidc_link.clock import Clock
from oidc_link.keys import SigningKeys, TokenError
from oidc_link.models import Identity
from oidc_link.oauth.claims import OAuthClient
from oidc_link.oauth.claims_request import parse_claims_request
from oidc_link.oauth.messages import AuthlibRequest
from oidc_link.platform.accounts import Accounts


class SessionReuse:
    def __init__(self, keys: SigningKeys, clock: Clock, accounts: Accounts) -> None:
        self._keys = keys
        self._clock = clock
        self._accounts = accounts

    def identity_for(self, request: AuthlibRequest) -> Identity | None:
        """The session's identity if it may answer this request without a new sign-in.

        Not when the RP asks for a fresh login (``prompt=login``, ``max_age`` exceeded or
        0, OIDC Core §3.1.2.1), nor when its ``id_token_hint`` names someone else, nor at
        a sector the person signed out of on its account page.
        """
        session = request.sso_session
        if session is None:
            return None
        data = request.payload.data
        if "login" in (data.get("prompt") or "").split():
            return None
        if "max_age" in data:  # already checked to be digits
            max_age = int(data["max_age"])
            if max_age == 0 or self._clock.now() - session.identity.auth_time > max_age:
                return None
        hint = data.get("id_token_hint")
        client: OAuthClient = request.client
        if client.settings.subject_sector in session.left_sectors:
            # Signed out of this client's sector on an account page; the session stays
            # only for other apps.
            return None
        if hint:
            try:
                claims = self._keys.verify(
                    hint, audience=client.get_client_id(), check_expiry=False
                )
            except TokenError:
                return None
            if claims.get("sub") != self._accounts.subject_of(
                client.settings.subject_sector, session.identity.email
            ):
                return None
        # OIDC Core §5.5.1: a ``sub`` asked for by value is a user the session may not be.
        wanted = parse_claims_request(data.get("claims"))
        if wanted.names_subject and not wanted.allows_subject(
            self._accounts.subject_of(client.settings.subject_sector, session.identity.email)
        ):
            return None
        return session.identity
