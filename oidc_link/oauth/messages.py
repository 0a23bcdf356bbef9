"""Requests and answers as the protocol sees them, with no web framework attached."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    OAuth2Payload,
    OAuth2Request,
)

from oidc_link.config import ClientSettings
from oidc_link.models import Identity, SsoSession
from oidc_link.store import Writes
from oidc_link.store.accounts import AccountRead


@dataclass(frozen=True)
class ProtocolRequest:
    """An HTTP request as the protocol sees it, independent of any web framework."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProtocolResponse:
    status: int
    body: str | dict[str, Any]
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


class AuthorizationPageError(Exception):
    """An authorization request we must not redirect back for (unknown client or redirect URI)."""

    def __init__(self, error: OAuth2Error) -> None:
        self.error = error
        super().__init__(error.error)

    @property
    def description(self) -> str:
        return self.error.get_error_description() or self.error.error


@dataclass(frozen=True)
class ValidAuthorization:
    """A validated authorization request: answered from the SSO session when ``signed_in``
    is set, else it becomes a hosted sign-in flow."""

    client: ClientSettings
    parameters: dict[str, str]
    signed_in: Identity | None = None
    # Authlib's grant that validated it, for ``Provider.approve`` to issue the SSO session's
    # code from without validating the same request again.
    grant: Any = field(default=None, compare=False, repr=False)


class InvalidAccessTokenError(Exception):
    """A bearer token at /userinfo that is missing, unknown or expired (RFC 6750 §3.1).

    ``presented`` says whether the request carried a token at all: §3.1 gives no error code
    in the challenge when it did not.
    """

    def __init__(self, *, presented: bool) -> None:
        super().__init__("invalid_token" if presented else "no access token")
        self.presented = presented


class AuthlibPayload(OAuth2Payload):
    """A request's parameters as Authlib reads them: ``data`` the first value of each,
    ``datalist`` all of them (built when first asked: only repeated-parameter checks do)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        data = dict(pairs)
        if len(data) != len(pairs):  # a name repeated: the first value is the one
            data = {}
            for key, value in pairs:
                data.setdefault(key, value)
        self._data = data
        self._datalist: defaultdict[str, list[str]] | None = None

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        if self._datalist is None:
            if len(self._data) == len(self._pairs):  # each name once: one value each
                self._datalist = defaultdict(list, {k: [v] for k, v in self._pairs})
            else:
                self._datalist = defaultdict(list)
                for key, value in self._pairs:
                    self._datalist[key].append(value)
        return self._datalist


class AuthlibRequest(OAuth2Request):
    """A request as Authlib's hooks see it, with what our hooks read declared here.

    ``sso_session``: the SSO session the sign-in belongs to (its sid goes into the code, and
    it may answer /authorize without a sign-in). ``store_writes``: the write batch issuing a
    code joins, so a sign-in's writes stay one MULTI. ``account_read``: the account issuing
    a code looks up, when the code step read it ahead (Accounts.read_ahead).
    """

    def __init__(
        self,
        issuer: str,
        request: ProtocolRequest,
        *,
        sso_session: SsoSession | None = None,
        store_writes: Writes | None = None,
        secure_issuer: bool = False,
    ) -> None:
        # Authlib reads the URI only to check that it is https (or loopback): the issuer and
        # path decide that, so the query is not encoded back into it for every request.
        uri = issuer + request.path
        if secure_issuer:
            # The check's answer is the issuer's, found once (Provider): not parsed again
            # for every request. These are the fields OAuth2Request.__init__ sets
            # (tests/test_authlib_request.py holds them to Authlib's own list).
            self.method = request.method
            self.uri = uri
            self.headers = request.headers
            self._body = None
            self.client = None
            self.auth_method = None
            self.user = None
            self.authorization_code = None
            self.refresh_token = None
            self.credential = None
            self._scope = None
        else:
            super().__init__(request.method, uri, headers=request.headers)
        self.payload = AuthlibPayload(request.query + request.form)
        self._args = dict(request.query)
        self._form = dict(request.form)
        self.sso_session = sso_session
        self.store_writes = store_writes
        self.account_read: AccountRead | None = None

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form
