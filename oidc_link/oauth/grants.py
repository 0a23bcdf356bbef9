"""The authorization code grant with PKCE and OpenID Connect, on our storage and keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeGrant,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    scope_to_list,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN, create_s256_code_challenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    RegistrationNotSupportedError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)

from oidc_link.clock import Clock
from oidc_link.config import ClientSettings, Settings
from oidc_link.ids import new_secret
from oidc_link.models import AuthorizationCode, Identity
from oidc_link.oauth.claims import ACR_SMS_OTP, OAuthClient
from oidc_link.oauth.claims_request import parse_claims_request
from oidc_link.oauth.consent import ConsentRequest
from oidc_link.oauth.messages import AuthlibRequest
from oidc_link.oauth.par import PUSHED_MARKER
from oidc_link.oauth.request_shape import refuse_repeated_parameters
from oidc_link.oauth.sso import SessionReuse
from oidc_link.oauth.tokens import TokenLifecycle
from oidc_link.platform.accounts import Accounts
from oidc_link.store import Store, Writes

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
# OIDC Core §3.1.2.1; select_account is answered like login: there is one account per email.
SUPPORTED_PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# OAuth 2.0 Form Post Response Mode: the web layer turns the redirect into a posted form.
RESPONSE_MODES = ("query", "form_post")
# RFC 7636 §4.2: BASE64URL(SHA-256(code_verifier)), unpadded: exactly 43 characters.
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class OneValueEach:
    """RFC 6749 §3.1: no authorization request parameter more than once.

    Authlib refuses a repeated response_type, client_id, redirect_uri, scope or state
    before the redirect URI is trusted (an error page); this hook refuses any other,
    after it is trusted, so the client hears ``invalid_request`` at its redirect URI.
    """

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.check)

    @staticmethod
    def check(grant: Any, redirect_uri: str) -> None:
        datalist = grant.request.payload.datalist
        refuse_repeated_parameters((name, "") for name, values in datalist.items() for _ in values)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1), required of every client unless its
    registration says ``require_pkce = false`` (legacy confidential clients only).

    The challenge is checked here, at /authorize; the verifier at /token by the script that
    redeems the code (``presented`` says what it compares), not by a hook.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - Authlib reads a class attribute

    def __call__(self, grant: Any) -> None:
        grant.register_hook(
            "after_validate_authorization_request_payload", self.validate_code_challenge
        )

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: OAuthClient = grant.request.client
        challenge = data.get("code_challenge")
        # RFC 7636 §4.4.1: a server that requires PKCE answers a missing challenge with
        # invalid_request.
        if client.settings.require_pkce and not challenge:
            raise InvalidRequestError("PKCE is required: send 'code_challenge' (S256).")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)
        # RFC 7636 §4.2: an S256 challenge is BASE64URL(SHA-256(verifier)) without padding,
        # 43 characters; anything else can never match a verifier, so it is refused now,
        # at /authorize, rather than after the person has signed in.
        if challenge and not S256_CHALLENGE.fullmatch(challenge):
            raise InvalidRequestError(
                "'code_challenge' must be 43 base64url characters (an S256 hash)."
            )

    @staticmethod
    def presented(verifier: str | None) -> str:
        """What the code's script compares with the code's challenge (RFC 7636 §4.6): the
        S256 of a well-formed ``code_verifier``, '' when there is none, and for a malformed
        one (§4.1: 43-128 unreserved characters) '!', which no challenge is."""
        if not verifier:
            return ""
        if not CODE_VERIFIER_PATTERN.fullmatch(verifier):
            return "!"
        return create_s256_code_challenge(verifier)


# The token endpoint's answers to a code the script refused (store/token_scripts.py REDEEM_CODE), as
# Authlib's code grant and our PKCE rules word them: all invalid_grant (RFC 6749 §5.2). A
# verifier that does not fit the code includes a missing or malformed one for a code issued
# with a challenge, and any verifier for a code issued without one (RFC 9700 §4.8.2); the
# code was spent on this presentation either way.
REFUSED_CODE = {
    "unknown": "Invalid 'code' in request.",
    "invalid": "Invalid 'code' in request.",
    "redirect_uri": "Invalid 'redirect_uri' in request.",
    "pkce_unexpected": "This code was issued without 'code_challenge'.",
    "pkce_missing": "Missing 'code_verifier': this code was issued with PKCE.",
    "pkce_mismatch": "The 'code_verifier' does not match the 'code_challenge'.",
}


class GrantServer(Protocol):
    """What the code grant uses of the server Authlib hands it (the Provider), declared
    here so that this module imports nothing that registers it."""

    settings: Settings
    store: Store
    clock: Clock
    accounts: Accounts
    tokens: TokenLifecycle


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    server: GrantServer

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: OAuthClient) -> str:
        # Authlib quotes the URI in its error description, and a URI holding a character
        # RFC 6749 §4.1.2.1 forbids there (a quote, non-ASCII) made that a crash, not an error.
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            raise InvalidRequestError("The redirect URI is not supported by this client.")
        return AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def generate_authorization_code(self) -> str:
        """48 URL-safe characters, 288 random bits, from one read of the system's random
        source: Authlib's draws each of its 48 characters apart (a read per character)."""
        return new_secret(36)

    def save_authorization_code(self, code: str, request: AuthlibRequest) -> None:
        # What issuing a code writes goes in one batch, one round trip: the caller's
        # (Provider.approve's ``writes``), else one of its own.
        if request.store_writes is not None:
            self._queue_code(code, request, request.store_writes)
        else:
            with self.server.store.writes() as writes:
                self._queue_code(code, request, writes)

    def _queue_code(self, code: str, request: AuthlibRequest, writes: Writes) -> None:
        identity: Identity = request.user
        client: OAuthClient = request.client
        client_id = client.get_client_id()
        data = request.payload.data
        scope = request.scope
        # The SSO session this sign-in belongs to (sign_in.py, through Provider.approve): its
        # sid goes into the code, and the session remembers the client so logout can tell it.
        session = request.sso_session
        server = self.server
        store = server.store
        tokens = server.tokens
        family_id = tokens.family_of(code)
        if session is not None:
            # The family goes into the session's set with the client (one SADD, one EXPIRE)
            # when its tokens end with the session; bind_family then leaves that set alone.
            store.sessions.remember_client(
                session.sid,
                client_id,
                session.absolute_expiry,
                family_id=family_id if tokens.ends_with_session(scope) else None,
                writes=writes,
            )
        # The user's account at this client's owner (its sub, as Provider.subject_for
        # gives it), created on the first sign-in (issue 6).
        subject = server.accounts.sign_in(
            client.settings.subject_sector,
            identity.email,
            identity.name,
            writes,
            request.account_read,
        )
        record = AuthorizationCode(
            client_id=client_id,
            redirect_uri=data.get("redirect_uri"),
            scope=scope,
            subject=subject,
            identity=identity,
            expires_at=server.clock.now() + server.settings.lifetimes.code,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            sid=session.sid if session is not None else None,
            # Validated with the request (LinkOpenIDCode); read when tokens are issued.
            claims=data.get("claims"),
            family_id=family_id,
        )
        store.tokens.save_code(code, record, writes=writes)
        # Bound now, in this batch, so that redeeming the code is one script.
        tokens.bind_family(record, family_id, writes, in_session_set=session is not None)


class SignInAnswers(Protocol):
    """What the OpenID checks ask of the Provider, which passes itself in: the signed-in
    user's consent and their ``sub``."""

    def consent_request(
        self, client_id: str, parameters: Mapping[str, str], identity: Identity
    ) -> ConsentRequest: ...

    def subject_for(self, client: ClientSettings, email: str) -> str: ...


class LinkOpenIDCode(OpenIDCode):
    """OpenID Connect's checks of an authorization request on top of the code grant (the
    ID token is token_endpoint.py's)."""

    def __init__(self, provider: SignInAnswers, session_reuse: SessionReuse) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider
        self.session_reuse = session_reuse

    def __call__(self, grant: Any) -> None:
        super().__call__(grant)
        grant.register_hook(
            "after_validate_authorization_request_payload", self._refuse_unsupported
        )

    def _refuse_unsupported(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        prompts = (data.get("prompt") or "").split()
        if set(prompts) - SUPPORTED_PROMPTS:
            raise InvalidRequestError("Unsupported 'prompt' value.")
        if "max_age" in data and not data["max_age"].isdigit():
            raise InvalidRequestError("'max_age' must be a whole number of seconds.")
        if "openid" not in (scope_to_list(data.get("scope")) or []):
            raise InvalidScopeError("This is an OpenID provider: the 'openid' scope is required.")
        # OIDC Core §6: refuse request objects rather than silently ignore them.
        if "request" in data:
            raise RequestNotSupportedError()
        if "request_uri" in data:
            raise RequestURINotSupportedError()
        # OIDC Core §7.2.1: the registration parameter is for Self-Issued OPs; we are none.
        if "registration" in data:
            raise RegistrationNotSupportedError()
        if data.get("response_mode", "query") not in RESPONSE_MODES:
            raise InvalidRequestError("'response_mode' must be query or form_post.")
        # RFC 9126 §6: this client's requests must come through PAR (par.py marks them).
        registered = grant.request.client.settings
        if registered.require_pushed_authorization_requests and PUSHED_MARKER not in data:
            raise InvalidRequestError("This client must push its authorization requests (PAR).")
        # OIDC Core §5.5: the claims request must be well formed; an essential acr must be
        # one we can give, else the authentication counts as failed (§5.5.1.1).
        claims_request = parse_claims_request(data.get("claims"))
        if not claims_request.allows_acr(ACR_SMS_OTP):
            raise AccessDeniedError("The requested authentication context (acr) is not offered.")
        if grant.request.user is None:
            # Before Authlib's prompt check: prompt=none succeeds only with a usable session.
            grant.request.user = self.session_reuse.identity_for(grant.request)
            if grant.request.user is not None and prompts == ["none"]:
                # OIDC Core §3.1.2.6: no page may be shown, so consent the client still
                # needs is an error, not the consent page. (prompt=none with any other
                # value is Authlib's invalid_request, §3.1.2.1.)
                client: OAuthClient = grant.request.client
                if self.provider.consent_request(
                    client.get_client_id(), data, grant.request.user
                ).needed:
                    raise ConsentRequiredError()
        elif claims_request.names_subject and not claims_request.allows_subject(
            self.provider.subject_for(registered, grant.request.user.email)
        ):
            # OIDC Core §5.5.1: never an answer about another user than the requested sub.
            raise AccessDeniedError("The signed-in user is not the one the client asked for.")

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        # The nonce is the relying party's replay check (OIDC Core §3.1.3.7): we echo it
        # into the ID token and do not reject a repeated one.
        return False
