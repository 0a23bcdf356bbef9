"""Pushed authorization requests (RFC 9126): the /par endpoint's answer, and turning a
pushed ``request_uri`` back into its parameters at /authorize.

Framework-free like the rest of the oauth package; the pushed requests live in the store.
Nothing here signs anyone in: a pushed request is only checked, kept, and handed back once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.core.errors import InvalidRequestURIError, RequestNotSupportedError

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes
from oidc_link.ids import new_secret, same
from oidc_link.models import PushedRequest
from oidc_link.oauth.messages import AuthorizationPageError, ProtocolRequest, ProtocolResponse
from oidc_link.store import Store

# RFC 9126 §2.2: the request_uri is a URN of this form, with a random reference.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
# Set on the parameters of a request that came through PAR, so that the checks of a
# ``require_pushed_authorization_requests`` client pass it, at /authorize and again when the
# stored request is answered after sign-in. Only ``resolve`` adds it, and it removes it
# from every request that arrives from outside: no client can claim to have pushed.
PUSHED_MARKER = "oidc_link:pushed"
# How the client authenticates at /par; not part of the authorization request it pushes.
CLIENT_AUTH_PARAMETERS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})
JSON_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
]


@dataclass(frozen=True)
class ResolvedAuthorizationRequest(ProtocolRequest):
    """An /authorize request as it is to be validated: the pushed parameters when it named
    a pushed ``request_uri`` (and only those, RFC 9126 §4), else its own."""

    @property
    def parameters(self) -> dict[str, str]:
        """The first value of each parameter, as Authlib reads them."""
        parameters: dict[str, str] = {}
        for key, value in [*self.query, *self.form]:
            parameters.setdefault(key, value)
        return parameters


class PushedAuthorizations:
    """``POST /par`` and the use of its ``request_uri`` at /authorize."""

    def __init__(
        self,
        server: AuthorizationServer,
        store: Store,
        clock: Clock,
        lifetimes: Lifetimes,
        auth_methods: Sequence[str],
    ) -> None:
        # The Provider, as Authlib's server: client authentication, grants, error answers.
        self.server = server
        self.store = store
        self.clock = clock
        self.lifetimes = lifetimes
        # The token endpoint's methods: RFC 9126 §2 authenticates the client the same way.
        self.auth_methods = auth_methods

    def push(self, request: ProtocolRequest) -> ProtocolResponse:
        """RFC 9126 §2.1: authenticate the client, check the request as /authorize would,
        keep it, answer 201 with its ``request_uri``. Errors are JSON (§2.3), never a
        redirect: nobody's browser is involved yet."""
        server = self.server
        # The parameters are in the form-encoded body; a query string is not part of it.
        body_only = ProtocolRequest(request.method, request.path, [], request.form, request.headers)
        try:
            client = server.authenticate_client(
                server.create_oauth2_request(body_only), self.auth_methods, "token"
            )
            parameters = self._parameters(request.form, client.get_client_id())
            self._validate(parameters)
        except OAuth2Error as error:
            error.redirect_uri = None
            error.state = None
            return server.handle_error_response(None, error)
        # 256 bits: RFC 9126 §2.2 asks for a value that cannot be guessed (§7.1).
        request_uri = REQUEST_URI_PREFIX + new_secret(32)
        lifetime = self.lifetimes.pushed_request
        self.store.tokens.save_pushed_request(
            request_uri,
            PushedRequest(client.get_client_id(), parameters, self.clock.now() + lifetime),
        )
        return ProtocolResponse(
            201, {"request_uri": request_uri, "expires_in": lifetime}, list(JSON_HEADERS)
        )

    def _parameters(self, form: list[tuple[str, str]], client_id: str) -> dict[str, str]:
        pairs = [(k, v) for k, v in form if k not in CLIENT_AUTH_PARAMETERS and k != PUSHED_MARKER]
        parameters = dict(pairs)
        if len(parameters) < len(pairs):
            # RFC 6749 §3.1: no parameter may be sent more than once.
            raise InvalidRequestError("A parameter is repeated.")
        # RFC 9126 §2.1: not inside a pushed request (nor a request object: we have none).
        if "request_uri" in parameters:
            raise InvalidRequestError("'request_uri' cannot be pushed.")
        if "request" in parameters:
            raise RequestNotSupportedError()
        # client_id is an authorization request parameter (§2.1); a client that
        # authenticated in the Authorization header may leave it out, but not name another.
        if not same(parameters.setdefault("client_id", client_id), client_id):
            raise InvalidRequestError("'client_id' is not the authenticated client.")
        return parameters

    def _validate(self, parameters: dict[str, str]) -> None:
        """Everything /authorize checks before anyone signs in (RFC 9126 §2.1, step 3).

        Not the prompt and session checks: they belong to the browser's visit, later.
        """
        pushed = [*parameters.items(), (PUSHED_MARKER, "1")]
        request = self.server.create_oauth2_request(ProtocolRequest("GET", "/authorize", pushed))
        grant = self.server.get_authorization_grant(request)
        grant.validate_authorization_request()

    def resolve(self, request: ProtocolRequest) -> ResolvedAuthorizationRequest:
        """The request /authorize must validate.

        A pushed ``request_uri`` (with the ``client_id`` that pushed it, §4) is consumed:
        one use, so a reload of the same /authorize URL meets the error page. Unknown,
        expired, used or another client's: an error page, no redirect, since the only
        redirect URI at hand is one nobody checked (RFC 6749 §4.1.2.1).
        Any other ``request_uri`` stays in the request, for the grant to refuse.
        """
        query, form = request.query, request.form
        pairs = [*query, *form] if form else query
        parameters = dict(pairs)
        if PUSHED_MARKER in parameters:
            query = [(k, v) for k, v in query if k != PUSHED_MARKER]
            form = [(k, v) for k, v in form if k != PUSHED_MARKER]
        own = ResolvedAuthorizationRequest(
            request.method, request.path, query, form, request.headers
        )
        if PUSHED_MARKER in parameters or len(parameters) != len(pairs):
            parameters = own.parameters  # the first value of a repeated name, as Authlib's
        request_uri = parameters.get("request_uri", "")
        if not request_uri.startswith(REQUEST_URI_PREFIX):
            return own
        client_id = parameters.get("client_id")
        if not client_id:
            raise AuthorizationPageError(
                InvalidRequestError("Missing 'client_id': it is required with 'request_uri'.")
            )
        pushed = self.store.tokens.take_pushed_request(request_uri)
        if (
            pushed is None
            or pushed.expires_at <= self.clock.now()
            or not same(pushed.client_id, client_id)
        ):
            raise AuthorizationPageError(
                InvalidRequestURIError(
                    "The sign-in request has expired or was already used. It can be used "
                    "once, within a short time."
                )
            )
        resolved = [*pushed.parameters.items(), (PUSHED_MARKER, "1")]
        return ResolvedAuthorizationRequest(
            request.method, request.path, resolved, [], request.headers
        )
