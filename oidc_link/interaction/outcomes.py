"""What a sign-in step gives back: it moved on (StepResult), it did not and why (Problem), or
the flow ended (Completion); and the one log line for a step that did not move forward.
Words and status codes for each Problem are the web layer's."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from oidc_link.models import Flow, Identity

# One logger for the whole sign-in, named as before interaction.py became a package: the
# JSON log's "logger" field carries it, and log queries filter on it.
log = logging.getLogger("oidc_link.interaction")


class Problem(enum.Enum):
    """Why a step did not move forward; the page turns it into words."""

    INVALID_EMAIL = "invalid_email"
    INVALID_CODE_FORMAT = "invalid_code_format"
    WRONG_CODE = "wrong_code"
    CODE_EXPIRED = "code_expired"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    RESEND_TOO_SOON = "resend_too_soon"
    NO_MORE_RESENDS = "no_more_resends"
    TOO_MANY_LOOKUPS = "too_many_lookups"
    TOO_MANY_SMS = "too_many_sms"
    LINK_RATE_LIMITED = "link_rate_limited"
    LINK_UNAVAILABLE = "link_unavailable"
    LINK_MISMATCH = "link_mismatch"
    LINK_SESSION_EXPIRED = "link_session_expired"
    # Account Links: the verified email is already another account's at the platform.
    EMAIL_TAKEN = "email_taken"
    # The email held control characters (pasted invisible ones, or a forged form).
    EMAIL_CONTROL_CHARACTERS = "email_control_characters"


# Problems that are a limit being hit: the page answers 429 Too Many Requests.
RATE_PROBLEMS = frozenset(
    {
        Problem.RESEND_TOO_SOON,
        Problem.NO_MORE_RESENDS,
        Problem.TOO_MANY_LOOKUPS,
        Problem.TOO_MANY_SMS,
        Problem.LINK_RATE_LIMITED,
    }
)


@dataclass(frozen=True)
class StepResult:
    flow: Flow
    problem: Problem | None = None
    # Attempts left after a wrong code, or seconds to wait before a new code (a resend, or
    # a limit's window to end).
    detail: int | None = None


@dataclass(frozen=True)
class Completion:
    """A finished flow: who signed in and where the browser goes next."""

    flow: Flow
    identity: Identity
    redirect_to: str


def log_failure(flow: Flow, reason: str) -> None:
    """A sign-in step that did not move forward, and why (the metrics' reasons)."""
    log.info(
        "Sign-in step failed: %s",
        reason,
        extra={"event": "sign_in.failed", "reason": reason, "client_id": flow.client_id},
    )
