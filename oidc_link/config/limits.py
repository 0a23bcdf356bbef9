"""The ``[limits]`` table: the abuse limits, and which of them the sandbox leaves off.

Also names the settings that were removed, so that check-config says what to set instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader


@dataclass(frozen=True)
class Limits:
    """Abuse limits; counts per window of seconds (DESIGN.md §4: counters live in Redis).

    None turns a limit off: the sandbox's default for the limits that count sent SMS
    (SMS_COUNTING_LIMITS), which it never sends. docs/security.md says what each one stops.
    """

    code_attempts: int = 5  # wrong codes per flow, then the flow ends
    resend_cooldown: int = 30  # seconds between two SMS in one flow
    resends: int = 3  # new codes per flow after the first
    # Codes to one email asked for from one client network (IPv4 address, IPv6 /64).
    sms_per_email: int | None = 5
    sms_per_email_window: int = 3600
    # Codes to one email from all networks together: short, as whoever fills it can keep
    # the email's owner from getting a code until the window ends.
    sms_per_email_ceiling: int | None = 10
    sms_per_email_ceiling_window: int = 300
    lookups_per_ip: int = 30  # per client network, as above
    lookups_per_ip_window: int = 600
    client_daily_sms: int | None = 10_000  # per client, per UTC day


# The limits that count sent SMS: off in the sandbox unless its [limits] sets them.
SMS_COUNTING_LIMITS = ("sms_per_email", "sms_per_email_ceiling", "client_daily_sms")
# [limits] settings that are gone, and what to set instead (check-config names it).
REMOVED_LIMITS = {
    "sms_per_phone": "it counted codes per redacted phone number (+1********23), which "
    "unrelated users share; remove it: sms_per_email (per email and client network) and "
    "sms_per_email_ceiling (per email, all networks) limit codes instead",
    "sms_per_phone_window": "remove it, with sms_per_phone; see sms_per_email_ceiling_window",
}


def read_limits(reader: Reader, raw: Any, *, sandbox: bool) -> Limits:
    """[limits]; in the sandbox, the limits that count sent SMS only when set here."""
    table = dict(reader.table(raw, "limits"))
    for name, instead in REMOVED_LIMITS.items():
        if table.pop(name, None) is not None:
            reader.problem(f"limits.{name}", f"was removed: {instead}")
    limits = reader.positive_int_table(table, "limits", Limits)
    if not sandbox:
        return limits
    unset = {name: None for name in SMS_COUNTING_LIMITS if name not in table}
    return dataclasses.replace(limits, **unset)
