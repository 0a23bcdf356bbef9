"""Account Links and Login Links: single-use, short-lived bearer URLs into hosted pages.

Owns minting one (random token, stored only under its digest), consuming it once on the
first visit, and what a visit may lead to. Knows nothing of HTTP; ``web/account.py`` turns a
visit into cookies and redirects.
"""

from __future__ import annotations

from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes
from oidc_link.config.reader import is_https_or_loopback
from oidc_link.errors import PlatformError
from oidc_link.ids import new_id, new_secret
from oidc_link.platform.accounts import Account, AccountParameterError, Accounts
from oidc_link.records import Record
from oidc_link.store import Store

ACCOUNT_LINK_TYPES = ("account_onboarding", "account_update")
LOGIN = "login"
# 32 random bytes: twice the 128 bits issue 6 asks for, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
URL_MAX_LENGTH = 2048
# The public half of an Account or Login Link (its id and refresh_url) outlives the token by
# this much, so a visit of a used or expired one can still be sent to the platform's refresh_url.
ACCOUNT_LINK_AFTERLIFE = 86_400
VISIT_PATH = "/links"


@dataclass(frozen=True)
class AccountLinkGrant(Record):
    """What an Account or Login Link's token grants, stored under the token's digest and taken
    on first visit."""

    # The Account or Login Link's id; the field keeps its stored name (records already in Redis).
    link_id: str
    kind: str  # account_onboarding | account_update | login
    owner: str
    client_id: str
    account_id: str
    refresh_url: str | None
    return_url: str | None
    created: int
    expires_at: int


@dataclass(frozen=True)
class AccountLinkPublic(Record):
    """The non-secret half of an Account or Login Link, found by the id in its URL: where a
    dead one goes."""

    refresh_url: str | None


@dataclass(frozen=True)
class MintedAccountLink:
    grant: AccountLinkGrant
    url: str


@dataclass(frozen=True)
class Visit:
    """The outcome of a visit: the grant (first visit in time), else where to send the
    browser instead (the platform's refresh_url; None when even the id in the URL is unknown)."""

    grant: AccountLinkGrant | None
    refresh_url: str | None = None


class AccountLinkAccountError(PlatformError):
    """The account named in an Account or Login Link request cannot have one (absent, wrong
    type); Stripe answers an absent one 404 (docs.stripe.com/api/account_links/create)."""

    code = "account_invalid"

    def __init__(self, param: str, code: str, message: str, *, missing: bool) -> None:
        super().__init__(param, code, message)
        self.missing = missing


class AccountLinks:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        lifetimes: Lifetimes,
        accounts: Accounts,
        issuer: str,
    ) -> None:
        self._store = store
        self._clock = clock
        self._lifetimes = lifetimes
        self._accounts = accounts
        self._issuer = issuer.rstrip("/")

    def create_account_link(
        self,
        owner: str,
        client_id: str,
        account_id: str | None,
        account_link_type: str | None,
        refresh_url: str | None,
        return_url: str | None,
    ) -> MintedAccountLink:
        """An onboarding or update Account Link; raises before storing anything."""
        for name, value in (
            ("account", account_id),
            ("type", account_link_type),
            ("refresh_url", refresh_url),
            ("return_url", return_url),
        ):
            if not value:
                raise AccountParameterError(
                    name, "parameter_missing", f"Missing required param: {name}."
                )
        assert account_id and account_link_type and refresh_url and return_url
        if account_link_type not in ACCOUNT_LINK_TYPES:
            raise AccountParameterError(
                "type",
                "parameter_invalid_string",
                f"Invalid type: must be one of {', '.join(ACCOUNT_LINK_TYPES)}.",
            )
        for name, value in (("refresh_url", refresh_url), ("return_url", return_url)):
            if len(value) > URL_MAX_LENGTH or not is_https_or_loopback(value):
                raise AccountParameterError(
                    name,
                    "url_invalid",
                    f"Invalid {name}: must be an https URL (http only on loopback).",
                )
        account = self._account(owner, account_id)
        lifetime = self._lifetimes.account_link
        return self._mint(
            account_link_type, owner, client_id, account, refresh_url, return_url, lifetime
        )

    def create_login_link(self, owner: str, client_id: str, account_id: str) -> MintedAccountLink:
        """A Login Link into the hosted account page; only express accounts have one."""
        account = self._account(owner, account_id)
        if account.type != "express":
            raise AccountLinkAccountError(
                "account",
                "account_invalid",
                "Login Links can only be created for express accounts.",
                missing=False,
            )
        return self._mint(LOGIN, owner, client_id, account, None, None, self._lifetimes.login_link)

    def visit(self, account_link_id: str, token: str) -> Visit:
        """Consume the token (GETDEL: of two visits, one gets the grant). A used, expired or
        garbled token gives only the refresh_url, and the same for all three."""
        public_raw = self._store.accounts.load_account_link(account_link_id)
        public = AccountLinkPublic.from_record(public_raw) if public_raw else None
        refresh_url = public.refresh_url if public else None
        raw = self._store.accounts.take_account_link_token(token)
        grant = AccountLinkGrant.from_record(raw) if raw else None
        if (
            grant is None
            or grant.link_id != account_link_id
            or grant.expires_at <= self._clock.now()
        ):
            return Visit(None, refresh_url)
        return Visit(grant)

    def _account(self, owner: str, account_id: str) -> Account:
        account = self._accounts.find(owner, account_id)
        if account is None:
            raise AccountLinkAccountError(
                "account",
                "resource_missing",
                f"No such account: '{account_id[:100]}'",
                missing=True,
            )
        return account

    def _mint(
        self,
        kind: str,
        owner: str,
        client_id: str,
        account: Account,
        refresh_url: str | None,
        return_url: str | None,
        lifetime: int,
    ) -> MintedAccountLink:
        now = self._clock.now()
        account_link_id = new_id("link", 12)  # "link_...": the id's public shape in its URL
        token = new_secret(TOKEN_BYTES)
        grant = AccountLinkGrant(
            link_id=account_link_id,
            kind=kind,
            owner=owner,
            client_id=client_id,
            account_id=account.id,
            refresh_url=refresh_url,
            return_url=return_url,
            created=now,
            expires_at=now + lifetime,
        )
        self._store.accounts.save_account_link(
            account_link_id,
            AccountLinkPublic(refresh_url).to_record(),
            token,
            grant.to_record(),
            grant.expires_at,
            ACCOUNT_LINK_AFTERLIFE,
        )
        return MintedAccountLink(grant, f"{self._issuer}{VISIT_PATH}/{account_link_id}/{token}")
