"""The OAuth 2.0 / OpenID Connect server: Authlib grants and hooks, framework-free.

The web layer hands in a ``ProtocolRequest`` and gets a ``ProtocolResponse`` back; nothing
here knows Flask. Authlib validates requests and shapes errors; we supply storage, the
signing key and the claims.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from authlib.common.security import is_secure_transport
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Request,
    UnsupportedResponseTypeError,
)

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings, Settings
from oidc_link.ids import same
from oidc_link.keys import SigningKeys
from oidc_link.logs.direct import write_event
from oidc_link.metrics import Metrics
from oidc_link.models import Identity, SsoSession
from oidc_link.oauth.claims import OAuthClient
from oidc_link.oauth.client_assertion import PRIVATE_KEY_JWT, PrivateKeyJWTAuthentication
from oidc_link.oauth.client_keys import ClientKeys, JwksFetcher
from oidc_link.oauth.code_redirect import code_location, with_issuer
from oidc_link.oauth.code_request import CodeRequestChecks
from oidc_link.oauth.consent import ConsentRequest, Consents
from oidc_link.oauth.grants import CodeGrant, LinkOpenIDCode, OneValueEach, S256CodeChallenge
from oidc_link.oauth.id_token import IdTokens
from oidc_link.oauth.messages import (
    AuthlibRequest,
    AuthorizationPageError,
    ProtocolRequest,
    ProtocolResponse,
    ValidAuthorization,
)
from oidc_link.oauth.par import PushedAuthorizations, ResolvedAuthorizationRequest
from oidc_link.oauth.plain_request import plain_authorization
from oidc_link.oauth.request_shape import (
    refuse_mixed_client_auth,
    refuse_repeated_parameters,
    refuse_unreadable_basic_credentials,
)
from oidc_link.oauth.sso import SessionReuse
from oidc_link.oauth.stored_request import grant_if_still_registered
from oidc_link.oauth.token_endpoint import TokenEndpoint
from oidc_link.oauth.tokens import Introspection, Revocation, TokenLifecycle
from oidc_link.outbound import Outbound
from oidc_link.platform.accounts import Accounts
from oidc_link.store import Store, Writes
from oidc_link.store.accounts import AccountRead

log = logging.getLogger(__name__)

# RFC 6749 §4.1.2.1: a character an error's text may not hold (outside %x20-21 / %x23-5B /
# %x5D-7E); what Authlib's invalid_error_characters finds, in one compiled search.
_NOT_ERROR_TEXT = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class Provider(AuthorizationServer):
    def __init__(
        self,
        settings: Settings,
        store: Store,
        keys: SigningKeys,
        clock: Clock,
        *,
        tokens: TokenLifecycle,
        consents: Consents,
        accounts: Accounts,
        id_tokens: IdTokens,
        session_reuse: SessionReuse,
        metrics: Metrics,
    ) -> None:
        """Collaborators come from the composition root (services.py); the code grant and
        the token endpoints reach ``store``, ``tokens`` and ``accounts`` through Authlib's
        ``server`` (grants.GrantServer)."""
        super().__init__()
        self.settings = settings
        self.store = store
        self.keys = keys
        self.clock = clock
        self.metrics = metrics
        self.tokens = tokens
        self.consents = consents
        self.accounts = accounts
        self._clients = {c.client_id: OAuthClient(c) for c in settings.clients}
        # Authlib refuses a request whose URI is not https (or loopback); every request's
        # URI is the issuer plus a path, so the issuer's answer is every request's.
        self.secure_issuer = is_secure_transport(settings.issuer)
        # private_key_jwt (RFC 7523 §2.2): a bad inline JWK Set stops start-up here.
        self.client_keys = ClientKeys(
            settings.clients, clock, JwksFetcher(Outbound.for_settings(settings))
        )
        self.register_client_auth_method(
            PRIVATE_KEY_JWT,
            PrivateKeyJWTAuthentication(settings.issuer, self.client_keys, store, clock),
        )
        openid = LinkOpenIDCode(self, session_reuse)
        extensions = [OneValueEach(), S256CodeChallenge(required=True), openid]
        self.register_grant(CodeGrant, extensions)
        self.code_requests = CodeRequestChecks(CodeGrant, extensions)  # hooks recorded once
        # /token's two grants, written out on our request type (token_endpoint.py).
        self.token_endpoint = TokenEndpoint(self, id_tokens)
        self.pushed = PushedAuthorizations(
            self, store, clock, settings.lifetimes, CodeGrant.TOKEN_ENDPOINT_AUTH_METHODS
        )
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        # No token generator is registered: both grants draw their tokens in TokenLifecycle
        # (redeem, rotate), before the one script that checks and stores them.

    # Authlib's framework hooks.

    def query_client(self, client_id: str) -> OAuthClient | None:
        return self._clients.get(client_id)

    def tokens_issued(self, grant_type: str, client_id: str, token: dict[str, Any]) -> None:
        """Counted and logged (on the request's line, logs/direct.py write_event) once the
        grant's script has stored them, before the ID token is signed."""
        self.metrics.token_issued(grant_type, client_id)
        write_event(
            log,
            logging.INFO,
            "Tokens issued (%s)",
            (grant_type,),
            {
                "event": "tokens.issued",
                "grant_type": grant_type,
                "client_id": client_id,
                "with_refresh_token": "refresh_token" in token,
            },
        )

    def get_authorization_grant(self, request: OAuth2Request) -> Any:
        """A code request's grant as Authlib makes it, on hooks recorded once."""
        if self.code_requests.grant_class.check_authorization_endpoint(request):
            return self.code_requests.new_grant(request, self)
        # Authlib quotes an unknown response_type in its error description, where RFC 6749
        # §4.1.2.1 forbids some characters (a quote, non-ASCII): that crashed instead of
        # answering. Such a value gets the error without a redirect (an error page, or
        # JSON at /par).
        if _NOT_ERROR_TEXT.search(request.payload.response_type or ""):
            raise UnsupportedResponseTypeError("(not printable)")
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as error:
            if request.payload.response_type:
                raise
            # RFC 6749 §4.1.2.1: a missing required parameter is invalid_request; redirected
            # only where Authlib found the redirect URI trustworthy.
            raise InvalidRequestError(
                "Missing 'response_type'.", redirect_uri=error.redirect_uri
            ) from None

    def get_consent_grant(
        self, request: ProtocolRequest | OAuth2Request | None = None, end_user: Any = None
    ) -> Any:
        """Authlib's, its checks called in order (code_request.py)."""
        return self.code_requests.consent_grant(self, self.create_oauth2_request(request), end_user)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> OAuthClient:
        # Authlib answers an unknown client_id sent in the body with a 400, and a wrong
        # secret with a 401. RFC 6749 §5.2 allows 401 for every invalid_client; one status
        # keeps the answer uniform (and the WWW-Authenticate challenge of §5.2 with it).
        try:
            client: OAuthClient = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            if error.status_code == 401:
                raise
            raise InvalidClientError(
                status_code=401, description=error.get_error_description()
            ) from None
        # HTTP Basic names the client in the header; a client_id in the body naming another
        # is two conflicting credentials (RFC 6749 §5.2 invalid_request), not a detail to drop.
        named = request.form.get("client_id")
        if named is not None and not same(named, client.get_client_id()):
            raise InvalidRequestError("'client_id' is not the authenticated client.")
        return client

    def create_oauth2_request(
        self,
        request: ProtocolRequest | OAuth2Request,
        sso_session: SsoSession | None = None,
        store_writes: Writes | None = None,
    ) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return AuthlibRequest(
            self.settings.issuer,
            request,
            sso_session=sso_session,
            store_writes=store_writes,
            secure_issuer=self.secure_issuer,
        )

    def handle_response(
        self, status: int, body: str | dict[str, Any], headers: list[tuple[str, str]]
    ) -> ProtocolResponse:
        return ProtocolResponse(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's signals are not used: logging and metrics hook in elsewhere."""

    # What the web layer calls.

    def validate_authorization(
        self, request: ProtocolRequest, session: SsoSession | None = None
    ) -> ValidAuthorization | ProtocolResponse:
        """Check an authorization request before any page is shown: the request (with the
        session's identity when the session may answer it), or an error redirect to the RP;
        AuthorizationPageError when the client or redirect URI cannot be trusted. An
        everyday code request is found valid without Authlib's objects (plain_request.py)."""
        if not isinstance(request, ResolvedAuthorizationRequest):
            request = self.resolve_authorization_request(request)
        plain = plain_authorization(self, request, session)
        if plain is not None:
            return plain
        grant = self._consent_grant(self.create_oauth2_request(request, session), None)
        if isinstance(grant, ProtocolResponse):
            return grant
        # The payload's own dict, made for this request alone: nothing writes to it.
        parameters = grant.request.payload.data
        return ValidAuthorization(
            grant.request.client.settings, parameters, grant.request.user, grant
        )

    def resolve_authorization_request(
        self, request: ProtocolRequest
    ) -> ResolvedAuthorizationRequest:
        """The parameters /authorize must use: a pushed request's (RFC 9126 §4), consumed
        here, else the request's own. Raises AuthorizationPageError for a pushed
        ``request_uri`` that is unknown, expired, used or another client's."""
        return self.pushed.resolve(request)

    def push_authorization(self, request: ProtocolRequest) -> ProtocolResponse:
        """``POST /par`` (RFC 9126 §2)."""
        return self._misshapen(request) or self.pushed.push(request)

    def approve(
        self,
        parameters: dict[str, str],
        identity: Identity,
        session: SsoSession | None = None,
        writes: Writes | None = None,
        account_read: AccountRead | None = None,
        validated: Any = None,
    ) -> ProtocolResponse:
        """Issue a code for a finished sign-in and redirect back to the RP.

        ``session`` is the SSO session the sign-in belongs to: the code carries its ``sid``
        and the session remembers the client, for logout. With ``writes``, what issuing the
        code stores is queued there (with the new session's, say: one round trip); with
        ``account_read``, the person's account as the code step read it ahead.
        ``validated``: the grant ``validate_authorization`` gave in this same request, which
        found ``identity`` signed in (the SSO session's answer); the code is issued from it,
        not from the request validated anew.
        """
        if validated is not None and validated.request.user is identity:
            request: AuthlibRequest = validated.request
            request.sso_session = session
            request.store_writes = writes
            request.account_read = account_read
            return self._issue_code(validated, identity)
        return self._respond(parameters, identity, session, writes, account_read)

    def consent_request(
        self, client_id: str, parameters: Mapping[str, str], identity: Identity
    ) -> ConsentRequest:
        """What the person must approve before this client hears of them: consent.py's
        decision, for the client this id names."""
        return self.consents.request(self.settings.client(client_id), parameters, identity)

    def remember_consent(
        self, client_id: str, parameters: Mapping[str, str], identity: Identity
    ) -> None:
        """The person allowed what this request asks; later requests for no more go through."""
        self.consents.allow(self.settings.client(client_id), parameters, identity)

    def deny(self, parameters: dict[str, str]) -> ProtocolResponse:
        """Tell the RP the user cancelled: ``access_denied`` (RFC 6749 §4.1.2.1)."""
        return self._respond(parameters, None)

    def _respond(
        self,
        parameters: dict[str, str],
        identity: Identity | None,
        session: SsoSession | None = None,
        writes: Writes | None = None,
        account_read: AccountRead | None = None,
    ) -> ProtocolResponse:
        # The stored request is validated again: the client's registration may have changed
        # while the user was signing in. What it decides is checked alone (stored_request.py);
        # what that would refuse, Authlib's validation answers. The code is then issued from
        # the grant, without create_authorization_response validating it a third time.
        request = self.create_oauth2_request(
            ProtocolRequest("GET", "/authorize", query=list(parameters.items())), session, writes
        )
        if isinstance(request, AuthlibRequest):
            request.account_read = account_read
            checked = grant_if_still_registered(self, request, identity)
            if checked is not None:
                return self._issue_code(checked, identity)
        grant = self._consent_grant(request, identity)
        if isinstance(grant, ProtocolResponse):
            return grant
        return self._issue_code(grant, identity)

    def _issue_code(self, grant: Any, identity: Identity | None) -> ProtocolResponse:
        """Authlib's ``create_authorization_response`` for a grant that has just validated its
        request, less validating it once more: the code (or, with no ``identity``,
        access_denied) back to the RP, its redirect built in one pass with ``iss``
        (code_redirect.py: the bytes Authlib's ``add_params_to_uri`` twice gave)."""
        request = grant.request
        try:
            if identity is None:
                raise AccessDeniedError(redirect_uri=grant.redirect_uri)
            request.user = identity
            code = grant.generate_authorization_code()
            grant.save_authorization_code(code, request)
        except OAuth2Error as error:
            error.state = request.payload.state
            answer = with_issuer(self.handle_error_response(request, error), self.settings.issuer)
        else:
            state = request.payload.state
            location = code_location(grant.redirect_uri, code, state, self.settings.issuer)
            answer = ProtocolResponse(302, "", [("Location", location)])
        grant.execute_hook("after_authorization_response", answer)
        return answer

    def _consent_grant(
        self, request: ProtocolRequest | OAuth2Request, identity: Identity | None
    ) -> Any | ProtocolResponse:
        """The authorization redirect's one error mapping (DESIGN.md §6): Authlib's error
        back to a trusted redirect_uri with ``iss`` (RFC 9207 §2), else a hosted page."""
        try:
            return self.get_consent_grant(request, end_user=identity)
        except OAuth2Error as error:
            if not error.redirect_uri:
                raise AuthorizationPageError(error) from None
            return with_issuer(self.handle_error_response(None, error), self.settings.issuer)

    def token(self, request: ProtocolRequest) -> ProtocolResponse:
        refused = self._misshapen(request)
        if refused is not None:
            return refused
        if not any(name == "grant_type" and value for name, value in request.form):
            # RFC 6749 §5.2: a missing required parameter is invalid_request (Authlib would
            # say unsupported_grant_type, which is for a value it does not know).
            return self.handle_error_response(None, InvalidRequestError("Missing 'grant_type'."))
        return self.token_endpoint.answer(
            AuthlibRequest(self.settings.issuer, request, secure_issuer=self.secure_issuer)
        )

    def revocation(self, request: ProtocolRequest) -> ProtocolResponse:
        """``POST /revoke`` (RFC 7009), answered by tokens.Revocation."""
        return self._misshapen(request) or self.create_endpoint_response(
            Revocation.ENDPOINT_NAME, request
        )

    def introspection(self, request: ProtocolRequest) -> ProtocolResponse:
        """``POST /introspect`` (RFC 7662), answered by tokens.Introspection."""
        return self._misshapen(request) or self.create_endpoint_response(
            Introspection.ENDPOINT_NAME, request
        )

    def _misshapen(self, request: ProtocolRequest) -> ProtocolResponse | None:
        """The 400 ``invalid_request`` of a back-channel request (/token, /par, /revoke,
        /introspect) that repeats a parameter or mixes client authentication methods
        (RFC 6749 §2.3, §3.2, §5.2; RFC 7009 §2.2.1, RFC 7662 §2.3, RFC 9126 §2.3 reuse
        it), or the 401 of Basic credentials that are not text, before any is believed."""
        try:
            refuse_repeated_parameters([*request.query, *request.form])
            refuse_mixed_client_auth(request.form, request.headers)
            refuse_unreadable_basic_credentials(request.headers)
        except (InvalidRequestError, InvalidClientError) as error:
            return self.handle_error_response(None, error)
        return None

    def subject_for(self, client: ClientSettings, email: str) -> str:
        """The ``sub`` a client knows the user by: their account id at the client's owner
        (its sector, else the client itself; issue 6), pairwise per OIDC Core §8.1."""
        return self.accounts.subject_of(client.subject_sector, email)
