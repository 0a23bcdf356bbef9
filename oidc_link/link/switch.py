"""The sandbox switch: make_link_client() is the only place that chooses between the sandbox
and a live Link client, from the validated LinkSettings.
"""

from __future__ import annotations

from collections.abc import Callable

from oidc_link.clock import Clock
from oidc_link.config import LinkSettings
from oidc_link.link import LinkClient
from oidc_link.link.http import LiveLinkClient
from oidc_link.link.sandbox import SandboxLinkClient, SandboxSessions, print_to_console


def make_link_client(
    settings: LinkSettings,
    clock: Clock,
    announce: Callable[[str], None] | None = None,
    sandbox_sessions: SandboxSessions | None = None,
) -> LinkClient:
    """Build the client the settings ask for. ``announce`` shows sandbox codes to the
    operator; ``sandbox_sessions`` (the store) keeps the sandbox's sessions."""
    if settings.mode == "sandbox":
        if sandbox_sessions is None:
            raise ValueError("the sandbox needs a table for its sessions (the store)")
        return SandboxLinkClient(
            settings.sandbox_users, clock, announce or print_to_console, sandbox_sessions
        )
    if settings.mode == "live" and settings.live is not None:
        return LiveLinkClient(settings.live)
    # Unreachable with validated settings: config.py reports these first.
    raise ValueError(f"Link mode {settings.mode!r} is unknown or lacks its [link.live] settings")
