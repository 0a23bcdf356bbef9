"""What production refuses: settings that are fine for the demo and ``serve --dev`` but would
lose state or sign nobody in for real. Returns the problems; the caller decides to stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oidc_link.config.reader import is_https_or_loopback
from oidc_link.errors import ConfigProblem

if TYPE_CHECKING:
    from oidc_link.config import Settings


def production_problems(settings: Settings, *, allow_sandbox: bool = False) -> list[ConfigProblem]:
    """Every reason these settings must not serve real users, all at once.

    ``allow_sandbox``: staging and benchmarks run the production server with the sandbox
    Link network; the other rules still hold.
    """
    problems: list[ConfigProblem] = []
    if not settings.redis_url:
        problems.append(
            ConfigProblem(
                "redis_url",
                "is required in production (set REDIS_URL): without it an embedded fakeredis "
                "keeps sign-ins, tokens and signing keys in one process's memory, lost at "
                "restart and not shared between workers",
            )
        )
    if settings.link.mode == "sandbox" and not allow_sandbox:
        problems.append(
            ConfigProblem(
                "link.mode",
                "is 'sandbox', which signs in made-up users with codes printed to the log: "
                'set link.mode = "live" (or pass --allow-sandbox for staging and benchmarks)',
            )
        )
    # Also refused by the configuration itself; kept here so the production rules are whole
    # in one place (OpenID Connect Discovery 1.0 §3: the issuer is an https URL).
    if not is_https_or_loopback(settings.issuer):
        problems.append(
            ConfigProblem("issuer", "must be an https URL in production (http only on loopback)")
        )
    return problems
