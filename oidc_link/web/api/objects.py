"""The Stripe-shaped objects /v1 answers with: ``id``, ``object``, ``created``, and lists
(docs.stripe.com/api/pagination)."""

from __future__ import annotations

from typing import Any

from oidc_link.platform.account_links import MintedAccountLink
from oidc_link.platform.accounts import Account, AccountPage, deleted_object
from oidc_link.platform.events import EventPage


def account_object(account: Account) -> dict[str, Any]:
    return account.shown()


def account_list(page: AccountPage, url: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [account_object(account) for account in page.accounts],
        "has_more": page.has_more,
        "url": url,
    }


def deleted_account(account_id: str) -> dict[str, Any]:
    return deleted_object(account_id)


def event_list(page: EventPage, url: str) -> dict[str, Any]:
    return {"object": "list", "data": page.events, "has_more": page.has_more, "url": url}


def account_link_object(minted: MintedAccountLink) -> dict[str, Any]:
    return {
        "object": "account_link",
        "created": minted.grant.created,
        "expires_at": minted.grant.expires_at,
        "url": minted.url,
    }


def login_link_object(minted: MintedAccountLink) -> dict[str, Any]:
    return {"object": "login_link", "created": minted.grant.created, "url": minted.url}
