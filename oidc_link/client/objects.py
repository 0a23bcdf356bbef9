"""What the API answers, as the client hands it back: dicts that also allow attribute access
(``account.id`` and ``account["id"]``), and lists that can page through everything."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Objects whose ``url`` is a single-use bearer URL: their repr hides it, so that logging an
# object by accident does not hand the URL to whoever reads the log.
_BEARER_URL_OBJECTS = frozenset({"account_link", "login_link"})
_REDACTED = "<redacted: single-use URL>"


class Headers(dict[str, str]):
    """Response headers, found whatever case the server or the caller writes their names in
    (RFC 9110 §5.1)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for name, value in pairs:
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        super().__setitem__(name.title(), value)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.title())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.title())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.title(), default)


@dataclass(frozen=True)
class ApiResponse:
    """The HTTP answer an object came from (Stripe's ``last_response``)."""

    http_status: int
    request_id: str | None
    headers: Headers = field(repr=False)

    @property
    def idempotent_replayed(self) -> bool:
        """True when the server replayed the first answer to this Idempotency-Key."""
        return self.headers.get("Idempotent-Replayed", "").lower() == "true"


class OidcLinkObject(dict[str, Any]):
    """An API object: a dict whose keys are also attributes."""

    last_response: ApiResponse | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "last_response":
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        kind = self.get("object", "object")
        ident = f" id={self['id']}" if isinstance(self.get("id"), str) else ""
        return f"<{type(self).__name__} {kind}{ident}> JSON: {self}"

    def __str__(self) -> str:
        return json.dumps(_redacted(self), sort_keys=True, indent=2, default=str)


class ListObject(OidcLinkObject):
    """A page of a list (``{"object": "list", "data": [...], "has_more", "url"}``).

    Iterating it gives this page's items; ``auto_paging_iter()`` gives every item, fetching
    the following pages with ``starting_after`` as it goes; or, for a page asked for with
    ``ending_before`` (``backwards``), the pages before it with ``ending_before``, each
    page's items in reverse.
    """

    def __init__(
        self,
        values: Mapping[str, Any] | None = None,
        next_page: Callable[[str], ListObject] | None = None,
        *,
        backwards: bool = False,
    ) -> None:
        super().__init__(values if values is not None else {})
        object.__setattr__(self, "_next_page", next_page)
        object.__setattr__(self, "_backwards", backwards)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return iter(self.get("data", []))

    def __len__(self) -> int:
        return len(self.get("data", []))

    def auto_paging_iter(self) -> Iterator[Any]:
        page: ListObject = self
        backwards = object.__getattribute__(self, "_backwards")
        while True:
            items = list(page)
            if backwards:
                items.reverse()
            yield from items
            fetch = object.__getattribute__(page, "_next_page")
            if not page.get("has_more") or not items or fetch is None:
                return
            # The cursor is the item yielded last: the oldest, or going back the newest.
            page = fetch(items[-1]["id"])


def convert(value: Any) -> Any:
    """Turn decoded JSON into client objects, all the way down."""
    if isinstance(value, dict):
        converted = {key: convert(item) for key, item in value.items()}
        if converted.get("object") == "list":
            return ListObject(converted)
        return OidcLinkObject(converted)
    if isinstance(value, list):
        return [convert(item) for item in value]
    return value


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        shown = {key: _redacted(item) for key, item in value.items()}
        if value.get("object") in _BEARER_URL_OBJECTS and "url" in shown:
            shown["url"] = _REDACTED
        return shown
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value
