"""The ``[lifetimes]`` table: how many seconds each kind of state lives.

Read only here; the store and the services receive the frozen ``Lifetimes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oidc_link.config.reader import Reader


@dataclass(frozen=True)
class Lifetimes:
    """Seconds each kind of state lives."""

    flow: int = 600
    code: int = 60
    access_token: int = 3600
    id_token: int = 3600
    # The SSO session: ends after this long unused, and this long after the SMS sign-in.
    session_idle: int = 86_400
    session_absolute: int = 7 * 86_400
    # Refresh tokens: each one lives this long from its issue (rotation gives a fresh one).
    refresh_token: int = 30 * 86_400
    # How long a just-rotated refresh token may still be presented (concurrent refreshes).
    refresh_grace: int = 10
    # A pushed authorization request's request_uri (RFC 9126 §2.2: short-lived).
    pushed_request: int = 90
    # A user's approval of a third-party client, unless revoked sooner.
    consent: int = 365 * 86_400
    # Account Links and Login Links (issue 6; Stripe's defaults): until the first visit.
    account_link: int = 3600
    login_link: int = 300
    # The hosted account page after a Login Link's visit; ends sooner on "Sign out".
    account_session: int = 3600


def read_lifetimes(reader: Reader, raw: Any) -> Lifetimes:
    return reader.positive_int_table(raw, "lifetimes", Lifetimes)
