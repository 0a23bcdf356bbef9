"""What the code step reads in its lock's round trip, found by what the form's token names
(the client and the email: the account ``finish`` will read; Link's session: the Link
client's own state for the check), and what that check wrote, sent with the release."""

from __future__ import annotations

from collections.abc import Callable

from oidc_link.interaction.admission import named_in
from oidc_link.interaction.flow_lock import HeldFlow
from oidc_link.link import CheckAhead, LinkClient
from oidc_link.store.flows import Rider


class CodeStepReads:
    """The riders of the code step's lock, and the Link check among them."""

    def __init__(
        self,
        token: str | None,
        read_ahead: Callable[[str, str], Rider | None] | None,
        link: LinkClient,
    ) -> None:
        self.riders: list[Rider] = []
        client_id, email, session = named_in(token)
        if read_ahead is not None and client_id is not None and email is not None:
            account = read_ahead(client_id, email)
            if account is not None:
                self.riders.append(account)
        self._check = link.check_ahead(session) if session is not None else None
        if self._check is not None:
            self.riders.append(self._check)

    def check(self, held: HeldFlow) -> CheckAhead | None:
        """The Link check's state, when it was read under ``held``'s lock: one read before
        another step released it may be stale, and that check then runs on its own."""
        return self._check if held.riders_locked else None

    def send_checked(self, held: HeldFlow) -> None:
        """What the Link check changed, into ``held``'s release (nothing: nothing sent)."""
        checked = self._check.after() if self._check is not None else None
        if checked is not None:
            held.riders.append(checked)
