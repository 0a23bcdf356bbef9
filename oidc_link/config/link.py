"""The ``[link]`` table: sandbox or live Link, the sandbox's users (``[[link.sandbox.users]]``)
and how to reach the real network (``[link.live]``). Settings only; oidc_link/link/ talks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader, is_https_or_loopback

LINK_MODES = ("sandbox", "live")
LINK_DIALECTS = ("loginwithlink", "stripe")
BODY_ENCODINGS = ("json", "form")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class SandboxUser:
    email: str
    phone: str
    name: str | None = None
    # Where the user lives, as Link's ``user.city``: the ``address`` claim's locality.
    city: str | None = None


@dataclass(frozen=True)
class LiveLinkSettings:
    """How to reach the real Link network (``[link.live]``)."""

    base_url: str
    publishable_key: str
    dialect: str = "loginwithlink"
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    # Extra attempts for safe calls only (lookups, and requests that never reached Link).
    max_retries: int = 2
    # The loginwithlink docs leave these two open; these are our defaults.
    body_encoding: str = "json"
    code_field: str = "code"


@dataclass(frozen=True)
class LinkSettings:
    mode: str = "sandbox"
    sandbox_users: tuple[SandboxUser, ...] = ()
    live: LiveLinkSettings | None = None


def read_link(reader: Reader, raw: Any) -> LinkSettings:
    table = reader.table(raw, "link")
    reader.reject_unknown(table, "link.", {"mode", "sandbox", "live"})
    mode = reader.text(table, "mode", "link.mode", required=False) or "sandbox"
    if mode not in LINK_MODES:
        reader.problem("link.mode", f"must be one of {', '.join(LINK_MODES)}")
    users = _read_sandbox_users(reader, table.get("sandbox", {}))
    live = _read_live_link(reader, table.get("live"), required=mode == "live")
    return LinkSettings(mode=mode, sandbox_users=users, live=live)


def _read_sandbox_users(reader: Reader, raw: Any) -> tuple[SandboxUser, ...]:
    """``[link.sandbox]``: the people the sandbox knows; emails lowercased, each once."""
    sandbox = reader.table(raw, "link.sandbox")
    reader.reject_unknown(sandbox, "link.sandbox.", {"users"})
    users_raw = sandbox.get("users", [])
    if not isinstance(users_raw, list):
        reader.problem("link.sandbox.users", "must be an array of tables ([[link.sandbox.users]])")
        users_raw = []
    users: list[SandboxUser] = []
    seen: set[str] = set()
    for index, raw_user in enumerate(users_raw):
        name = f"link.sandbox.users[{index}]"
        user = reader.table(raw_user, name)
        reader.reject_unknown(user, f"{name}.", {"email", "phone", "name", "city"})
        email = reader.text(user, "email", f"{name}.email")
        phone = reader.text(user, "phone", f"{name}.phone")
        display = reader.text(user, "name", f"{name}.name", required=False)
        city = reader.text(user, "city", f"{name}.city", required=False)
        if email and not _EMAIL.match(email):
            reader.problem(f"{name}.email", "is not an email address")
        elif email and email.lower() in seen:
            reader.problem(f"{name}.email", "appears twice")
        if phone and not _E164.match(phone):
            reader.problem(f"{name}.phone", "must be in E.164 form, such as +14155550123")
        if email and phone:
            seen.add(email.lower())
            users.append(SandboxUser(email=email.lower(), phone=phone, name=display, city=city))
    return tuple(users)


def _read_live_link(reader: Reader, raw: Any, *, required: bool) -> LiveLinkSettings | None:
    if raw is None:
        if required:
            reader.problem("link.live", "is required when link.mode is 'live'")
        return None
    table = reader.table(raw, "link.live")
    defaults = LiveLinkSettings(base_url="", publishable_key="")
    reader.reject_unknown(
        table,
        "link.live.",
        {
            "base_url",
            "publishable_key",
            "dialect",
            "connect_timeout",
            "read_timeout",
            "max_retries",
            "body_encoding",
            "code_field",
        },
    )
    base_url = reader.text(table, "base_url", "link.live.base_url") or ""
    if base_url and not is_https_or_loopback(base_url):
        reader.problem("link.live.base_url", "must be an https URL (http only on loopback)")
    key = reader.text(table, "publishable_key", "link.live.publishable_key") or ""
    if key and not key.startswith("pk_"):
        reader.problem("link.live.publishable_key", "must be a publishable key (pk_...)")
    dialect = reader.choice(table, "dialect", "link.live.dialect", LINK_DIALECTS)
    encoding = reader.choice(table, "body_encoding", "link.live.body_encoding", BODY_ENCODINGS)
    return LiveLinkSettings(
        base_url=base_url.rstrip("/"),
        publishable_key=key,
        dialect=dialect,
        connect_timeout=reader.positive_number(
            table, "connect_timeout", "link.live.connect_timeout", defaults.connect_timeout
        ),
        read_timeout=reader.positive_number(
            table, "read_timeout", "link.live.read_timeout", defaults.read_timeout
        ),
        max_retries=reader.count(
            table, "max_retries", "link.live.max_retries", defaults.max_retries
        ),
        body_encoding=encoding,
        code_field=reader.text(table, "code_field", "link.live.code_field", required=False)
        or defaults.code_field,
    )
