"""A client's ``[[clients.webhooks]]`` endpoints: where events go, which ones, and the secrets
that sign them. Only the settings; signing and delivery live in oidc_link/webhooks/."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from oidc_link.config.reader import Reader, is_https_or_loopback
from oidc_link.ids import digest

# Issue 18's event types (DESIGN.md: the events store, a later piece, emits exactly these).
WEBHOOK_EVENT_TYPES = (
    "account.created",
    "account.updated",
    "account.deleted",
    "account.application.deauthorized",
    "account.sessions.revoked",
)
ALL_EVENTS = "*"
# Stripe's shape: a prefix saying what the value is, then enough randomness to resist guessing.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_SECRET_RANDOM_CHARACTERS = 24
# The whole value is one reference: the secret lives in the environment, never in the file.
_WHOLE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_FIELDS = {"url", "events", "secret", "previous_secret"}


@dataclass(frozen=True)
class WebhookEndpoint:
    """One endpoint of one client. ``secrets``: the current secret first, then the previous
    one while a rotation runs; every delivery carries a signature by each."""

    client_id: str
    url: str
    events: frozenset[str]
    secrets: tuple[str, ...]

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events

    @property
    def endpoint_id(self) -> str:
        """A stable name for the operator and the store (``we_`` and 16 hex digits): the
        same client and URL keep it across restarts and edits of its events."""
        return "we_" + digest(self.client_id + "\x00" + self.url)[:16]

    def __repr__(self) -> str:
        # Never the secrets: settings get printed in tracebacks and debug sessions.
        return f"WebhookEndpoint(client_id={self.client_id!r}, url={self.url!r})"


def read_webhooks(
    reader: Reader, raw: Any, client_name: str, client_id: str | None
) -> tuple[WebhookEndpoint, ...]:
    """The client's endpoints (none when ``webhooks`` is absent); problems name the field."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.problem(
            f"{client_name}.webhooks", "must be an array of tables ([[clients.webhooks]])"
        )
        return ()
    endpoints: list[WebhookEndpoint] = []
    seen: set[str] = set()
    for index, raw_endpoint in enumerate(raw):
        name = f"{client_name}.webhooks[{index}]"
        endpoint = _read_endpoint(reader, raw_endpoint, name, client_id or "")
        if endpoint is None:
            continue
        if endpoint.url in seen:
            reader.problem(f"{name}.url", "appears twice for this client: list its events once")
        seen.add(endpoint.url)
        endpoints.append(endpoint)
    return tuple(endpoints) if client_id else ()


def _read_endpoint(reader: Reader, raw: Any, name: str, client_id: str) -> WebhookEndpoint | None:
    table = reader.table(raw, name)
    reader.reject_unknown(table, f"{name}.", _FIELDS)
    url = reader.text(table, "url", f"{name}.url")
    if url is not None:
        problem = _url_problem(url)
        if problem:
            reader.problem(f"{name}.url", problem)
            url = None
    events = _read_events(reader, table, f"{name}.events")
    current = _read_secret(reader, table, "secret", name, required=True)
    previous = _read_secret(reader, table, "previous_secret", name, required=False)
    if current is not None and previous is not None and current == previous:
        reader.problem(f"{name}.previous_secret", "is the same as secret: rotate to a new one")
    if url is None or events is None or current is None:
        return None
    secrets = (current,) if previous is None else (current, previous)
    return WebhookEndpoint(client_id=client_id, url=url, events=events, secrets=secrets)


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "must be an absolute URL"
    if parts.fragment or "#" in url:
        return "must not contain a fragment"
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and proxies; the signature authenticates us.
        return "must not contain a user name or password"
    if not is_https_or_loopback(url):
        return "must use https (http only on localhost/loopback)"
    return None


def _read_events(reader: Reader, table: Mapping[str, Any], name: str) -> frozenset[str] | None:
    events = reader.text_list(table, "events", name)
    if events is None:
        reader.problem(name, f'is required: a list of event types, or ["{ALL_EVENTS}"]')
        return None
    if not events:
        reader.problem(name, f'must not be empty: list event types, or ["{ALL_EVENTS}"]')
        return None
    unknown = sorted(set(events) - set(WEBHOOK_EVENT_TYPES) - {ALL_EVENTS})
    if unknown:
        reader.problem(
            name,
            f"unknown event type(s): {', '.join(unknown)} "
            f"(known: {', '.join(WEBHOOK_EVENT_TYPES)}, or {ALL_EVENTS})",
        )
        return None
    if ALL_EVENTS in events and len(set(events)) > 1:
        reader.problem(name, f'"{ALL_EVENTS}" already means every event type: list it alone')
        return None
    return frozenset(events)


def _read_secret(
    reader: Reader, table: Mapping[str, Any], key: str, name: str, *, required: bool
) -> str | None:
    """A signing secret, given as ``"${VARIABLE}"``; its value must look like one
    (``oidc-link webhooks new-secret``). Problems never quote the value."""
    field_name = f"{name}.{key}"
    raw = table.get(key)
    if raw is None or raw == "":
        if required:
            reader.problem(field_name, 'is required: "${VARIABLE}" naming the environment variable')
        return None
    if not isinstance(raw, str) or not _WHOLE_REFERENCE.match(raw):
        reader.problem(
            field_name,
            'must come from the environment: write "${VARIABLE}", never the secret itself',
        )
        return None
    value = reader.text(table, key, field_name)
    if value is None:
        return None  # the unset variable is already reported
    if not value.startswith(SECRET_PREFIX):
        reader.problem(
            field_name,
            f"the variable's value must start with {SECRET_PREFIX!r} "
            "(see `oidc-link webhooks new-secret`)",
        )
        return None
    if len(value) - len(SECRET_PREFIX) < MIN_SECRET_RANDOM_CHARACTERS:
        reader.problem(
            field_name,
            f"the variable's value is too short: {SECRET_PREFIX} and at least "
            f"{MIN_SECRET_RANDOM_CHARACTERS} random characters",
        )
        return None
    return value
