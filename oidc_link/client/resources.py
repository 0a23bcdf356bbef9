"""The API's resources as the client exposes them (``client.accounts``,
``client.account_links``, ``client.login_links``, ``client.events``): one method per
endpoint, no HTTP here."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from oidc_link.client.objects import ListObject, OidcLinkObject, convert
from oidc_link.client.transport import Answer, Transport

AccountType = Literal["express", "custom"]
AccountLinkType = Literal["account_onboarding", "account_update"]


def _object(answer: Answer) -> OidcLinkObject:
    made = convert(answer.body)
    made.last_response = answer.response
    return made


def _segment(object_id: str, example: str = "acct_...") -> str:
    """An id as one path segment: ``/`` or ``..`` in a caller's value cannot reach another
    endpoint."""
    if not isinstance(object_id, str) or not object_id:
        raise ValueError(f"an id must be a non-empty string such as '{example}'")
    return quote(object_id, safe="")


class Accounts:
    """``/v1/accounts``: the platform's accounts."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(
        self,
        *,
        type: AccountType,  # the API's parameter name, as in Stripe's SDKs
        email: str | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> OidcLinkObject:
        params: dict[str, Any] = {"type": type, "email": email, "metadata": metadata}
        answer = self._transport.request(
            "POST", "/v1/accounts", params, idempotency_key=idempotency_key
        )
        return _object(answer)

    def retrieve(self, account_id: str) -> OidcLinkObject:
        return _object(self._transport.request("GET", f"/v1/accounts/{_segment(account_id)}"))

    def update(
        self,
        account_id: str,
        *,
        email: str | None = None,
        metadata: dict[str, str] | Literal[""] | None = None,
        idempotency_key: str | None = None,
    ) -> OidcLinkObject:
        """Change ``email`` (before onboarding only) and merge ``metadata`` into the
        account's: a key given ``""`` is unset, ``metadata=""`` unsets them all."""
        params: dict[str, Any] = {"email": email, "metadata": metadata}
        path = f"/v1/accounts/{_segment(account_id)}"
        answer = self._transport.request("POST", path, params, idempotency_key=idempotency_key)
        return _object(answer)

    def list(
        self,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> ListObject:
        """One page, newest first; ``auto_paging_iter()`` on it walks every page: towards
        older accounts, or with ``ending_before`` towards newer ones (as Stripe's SDKs do,
        then yielding each page last item first, so the newest comes last)."""
        params = {"limit": limit, "starting_after": starting_after, "ending_before": ending_before}
        answer = self._transport.request("GET", "/v1/accounts", params)

        def next_page(cursor: str) -> ListObject:
            if ending_before is not None:
                return self.list(limit=limit, ending_before=cursor)
            return self.list(limit=limit, starting_after=cursor)

        page = ListObject(convert(answer.body), next_page, backwards=ending_before is not None)
        page.last_response = answer.response
        return page

    def delete(self, account_id: str) -> OidcLinkObject:
        """Delete an account; answers ``{"id", "object": "account", "deleted": true}``."""
        path = f"/v1/accounts/{_segment(account_id)}"
        return _object(self._transport.request("DELETE", path))


class AccountLinks:
    """``/v1/account_links``: single-use URLs for onboarding or updating an account."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(
        self,
        *,
        account: str,
        type: AccountLinkType,  # the API's parameter name
        refresh_url: str,
        return_url: str,
        idempotency_key: str | None = None,
    ) -> OidcLinkObject:
        """The answer's ``url`` is a bearer secret: send the user there, do not log it."""
        params = {
            "account": account,
            "type": type,
            "refresh_url": refresh_url,
            "return_url": return_url,
        }
        answer = self._transport.request(
            "POST", "/v1/account_links", params, idempotency_key=idempotency_key
        )
        return _object(answer)


class LoginLinks:
    """``/v1/accounts/{account}/login_links``: single-use URLs into the hosted account page
    (express accounts only)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(self, account: str, *, idempotency_key: str | None = None) -> OidcLinkObject:
        """The answer's ``url`` is a bearer secret: send the user there, do not log it."""
        path = f"/v1/accounts/{_segment(account)}/login_links"
        answer = self._transport.request("POST", path, {}, idempotency_key=idempotency_key)
        return _object(answer)


# ``created`` as Stripe's SDKs take it: an exact epoch second, or a range.
CreatedFilter = int | dict[Literal["gt", "gte", "lt", "lte"], int]


class Events:
    """``/v1/events``: what happened to the platform's accounts in the last 30 days."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def retrieve(self, event_id: str) -> OidcLinkObject:
        path = f"/v1/events/{_segment(event_id, 'evt_...')}"
        return _object(self._transport.request("GET", path))

    def list(
        self,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        type: str | None = None,  # the API's parameter name
        created: CreatedFilter | None = None,
    ) -> ListObject:
        """One page, newest first, of one ``type`` or all and within ``created``;
        ``auto_paging_iter()`` walks every page as for accounts."""
        params = {
            "limit": limit,
            "starting_after": starting_after,
            "ending_before": ending_before,
            "type": type,
            "created": created,
        }
        answer = self._transport.request("GET", "/v1/events", params)

        def next_page(cursor: str) -> ListObject:
            if ending_before is not None:
                return self.list(limit=limit, ending_before=cursor, type=type, created=created)
            return self.list(limit=limit, starting_after=cursor, type=type, created=created)

        page = ListObject(convert(answer.body), next_page, backwards=ending_before is not None)
        page.last_response = answer.response
        return page
