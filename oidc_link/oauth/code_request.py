"""Authlib's checks of an authorization code request, called one after another rather than
through hooks registered anew on every request's grant.

Authlib's ``get_consent_grant`` makes a grant per request, runs each extension on it (six
``register_hook`` calls into sets) and validates through three ``hooked`` wrappers, one of
them built anew inside ``validate_code_authorization_request`` on every call. What the
extensions register depends only on whether the scope is OpenID's, so it is recorded once
per answer, in registration order; each request's grant then gets that table, and the same
Authlib checks run in the order Authlib's wrappers run them. The judge stays Authlib's:
its grant, its redirect URI, response type, scope, nonce and prompt checks, its errors.

One difference, on a request with two faults the extensions each refuse: their checks ran
in a set's order (the order of the objects' addresses, so it could change from one process
to the next); here they run in the order they were registered, the same in every process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeGrant,
    InvalidClientError,
    InvalidScopeError,
    OAuth2Request,
    UnauthorizedClientError,
)
from authlib.oidc.core.grants.util import is_openid_scope

# Authlib's own logger for this check: its debug line is written as before.
_authlib_log = logging.getLogger("authlib.oauth2.rfc6749.grants.authorization_code")

Hook = Callable[..., Any]
Extension = Callable[[Any], None]

PAYLOAD_CHECKED = "after_validate_authorization_request_payload"
BEFORE_PAYLOAD = "before_validate_authorization_request_payload"
CONSENT_CHECKED = "after_validate_consent_request"
BEFORE_CONSENT = "before_validate_consent_request"
CHECKED_KINDS = (BEFORE_CONSENT, BEFORE_PAYLOAD, PAYLOAD_CHECKED, CONSENT_CHECKED)


class RecordedHooks(dict[str, tuple[Hook, ...]]):
    """A grant's hooks as its extensions register them, in registration order; shared by
    every grant of one kind of request, so read-only: a hook type nobody registered has
    none, and nothing may be added to a grant after it is made."""

    def __missing__(self, hook_type: str) -> tuple[Hook, ...]:
        return ()


class _Recorder:
    """Stands in for a grant while the extensions register their hooks: what they read of
    it is the request's scope (OpenID's checks only for an ``openid`` request)."""

    def __init__(self, scope: str) -> None:
        self.request = SimpleNamespace(payload=SimpleNamespace(scope=scope))
        self.hooks: dict[str, list[Hook]] = {}

    def register_hook(self, hook_type: str, hook: Hook) -> None:
        self.hooks.setdefault(hook_type, []).append(hook)


def record_hooks(extensions: Iterable[Extension], scope: str) -> RecordedHooks:
    """What the extensions register on a grant for a request of this scope."""
    recorder = _Recorder(scope)
    for extension in extensions:
        extension(recorder)
    # The kinds the checks below run are always present: no __missing__ call per request.
    recorded = RecordedHooks.fromkeys(CHECKED_KINDS, ())
    recorded.update((kind, tuple(hooks)) for kind, hooks in recorder.hooks.items())
    return recorded


class CodeRequestChecks:
    """``get_consent_grant`` for the code grant, on hooks recorded once."""

    def __init__(self, grant_class: type, extensions: list[Extension]) -> None:
        # What this class calls in their place must still be what the grant would run.
        for name in ("validate_consent_request", "validate_authorization_request"):
            if getattr(grant_class, name) is not getattr(AuthorizationCodeGrant, name):
                raise TypeError(f"{grant_class.__name__} overrides {name}: check it here too")
        self.grant_class = grant_class
        extensions = list(extensions)
        self._hooks = {
            True: record_hooks(extensions, "openid"),
            False: record_hooks(extensions, ""),
        }

    def new_grant(self, request: OAuth2Request, server: Any) -> Any:
        """The grant Authlib's ``_create_grant`` makes, with its extensions' hooks."""
        grant = self.grant_class(request, server)
        grant._hooks = self._hooks[bool(is_openid_scope(request.payload.scope))]
        return grant

    def consent_grant(self, server: Any, request: OAuth2Request, end_user: Any) -> Any:
        """Authlib's ``get_consent_grant``: the grant that validated the request, or its
        OAuth2Error carrying the request's ``state``."""
        try:
            request.user = end_user
            grant = server.get_authorization_grant(request)
            self.validate(grant)
        except OAuth2Error as error:
            error.state = request.payload.state
            raise
        return grant

    def validate(self, grant: Any) -> None:
        """Authlib's ``validate_no_multiple_request_parameter`` and
        ``validate_consent_request`` with its hooks, in the order its wrappers run them."""
        request = grant.request
        hooks = grant._hooks
        grant.validate_no_multiple_request_parameter(request)
        for hook in hooks[BEFORE_CONSENT]:
            hook(grant)
        redirect_uri = self._validate_code_request(grant, hooks)
        grant.redirect_uri = redirect_uri
        for hook in hooks[CONSENT_CHECKED]:
            hook(grant, redirect_uri)

    @staticmethod
    def _validate_code_request(grant: Any, hooks: RecordedHooks) -> str:
        """Authlib's ``validate_code_authorization_request``, step for step."""
        request = grant.request
        client_id = request.payload.client_id
        _authlib_log.debug("Validate authorization request of %r", client_id)
        if client_id is None:
            raise InvalidClientError(description="Missing 'client_id' parameter.")
        client = grant.server.query_client(client_id)
        if not client:
            raise InvalidClientError(description="The client does not exist on this server.")
        redirect_uri: str = grant.validate_authorization_redirect_uri(request, client)
        response_type = request.payload.response_type
        if not client.check_response_type(response_type):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'response_type={response_type}'",
                redirect_uri=redirect_uri,
            )
        request.client = client
        try:
            for hook in hooks[BEFORE_PAYLOAD]:
                hook(grant, redirect_uri)
            grant.validate_requested_scope()
            scope = client.get_allowed_scope(request.payload.scope)
            if scope is None:
                raise InvalidScopeError()
            request.scope = scope
            # Authlib's wrapper hands its hooks the payload check's result, which is None.
            for hook in hooks[PAYLOAD_CHECKED]:
                hook(grant, None)
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri
