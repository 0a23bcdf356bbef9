"""Stripe's list cursors (docs.stripe.com/api/pagination): the one error for a
``starting_after`` or ``ending_before`` that names nothing in the list, for every list."""

from __future__ import annotations

from oidc_link.errors import PlatformError


class UnknownStartingPointError(PlatformError):
    """``starting_after`` or ``ending_before`` names no object of this caller's list
    (an account, an event): a parameter to fix, so 400, not the 404 of a missing object."""

    code = "resource_missing"

    def __init__(self, cursor: str, param: str = "starting_after", kind: str = "account") -> None:
        super().__init__(param, self.code, f"No such {kind}: '{cursor[:100]}'")
