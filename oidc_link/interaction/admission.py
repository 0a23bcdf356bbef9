"""Whether a request may act on a stored flow (not expired, the browser that started it, the
form's CSRF token), and why a flow is gone: the record a flow's end leaves, which sends a
double submit where the first went. Which step may follow which is models.TRANSITIONS'."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.errors import (
    FlowBrowserMismatchError,
    FlowExpiredError,
    FlowFinishedError,
    FlowFormExpiredError,
    FlowNotFoundError,
)
from oidc_link.ids import digest, new_secret, same
from oidc_link.interaction.outcomes import log_failure
from oidc_link.metrics import Metrics
from oidc_link.models import FinishedFlow, Flow
from oidc_link.sealed import seal, unseal
from oidc_link.store.flows import FlowStore

# A double click on "Verify" lands where the first click went, but only this soon after:
# later, the code has likely been redeemed and replaying it would only hurt.
DOUBLE_SUBMIT_SECONDS = 10


def form_token(client_id: str) -> str:
    """A new flow's CSRF token: a secret, then the client the flow is for (not a secret:
    the page names it), so a POST says which client's counters to count before the flow
    is read. Admission compares both with the flow's (``door``), so a form naming another
    client is refused before anything counted for it stays counted."""
    return new_secret(24) + "." + _named(client_id)


def code_form_token(token: str, email: str, session_hint: str | None = None) -> str:
    """The token of a flow at the code step: its ``door``, then the email the code was sent
    for (not a secret: the page shows it), so the code POST can read that email's account
    before the flow is read; then what names Link's session, when the Link client gives a
    name (the sandbox's session id: no secret, it opens nothing), so the code POST can read
    the sandbox's state of it in the same round trip. Not part of the door: a form left
    open at the email step (Back) still passes, and a made-up email or session only costs
    the step the read it saved."""
    named = door(token) + "." + _named(email)
    return named + "." + _named(session_hint) if session_hint else named


def door(token: str) -> str:
    """What admission compares of a form token: the secret and the client it names."""
    return ".".join(token.split(".", 2)[:2])


def client_named_by(token: str | None) -> str | None:
    """The client a form token names (``form_token``); None for one that names none."""
    return _unnamed(token, 1)


def email_named_by(token: str | None) -> str | None:
    """The email a code step's form token names (``code_form_token``), unchecked."""
    return _unnamed(token, 2)


def session_named_by(token: str | None) -> str | None:
    """The Link session a code step's form token names (``code_form_token``), unchecked."""
    return _unnamed(token, 3)


def named_in(token: str | None) -> tuple[str | None, str | None, str | None]:
    """The client, the email and the Link session a form token names (each None where it
    names none), unchecked: ``client_named_by``, ``email_named_by`` and
    ``session_named_by`` in one split of the token."""
    parts = (token or "").split(".", 4)[1:4]
    parts += [""] * (3 - len(parts))
    client, email, session = (_decoded(part) for part in parts)
    return client, email, session


def _named(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unnamed(token: str | None, position: int) -> str | None:
    parts = (token or "").split(".")
    return _decoded(parts[position] if len(parts) > position else "")


def _decoded(named: str) -> str | None:
    if not named:
        return None
    try:
        padded = named + "=" * (-len(named) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text or None


@dataclass(frozen=True)
class FlowRequest:
    """Who asks: the flow, the browser's binding cookie, the form's CSRF token, the address."""

    flow_id: str
    browser_id: str | None
    csrf_token: str | None = None
    client_ip: str = ""


class Admission:
    """The checks at the door of every step, and the note a finished flow leaves behind."""

    def __init__(self, flows: FlowStore, clock: Clock, metrics: Metrics) -> None:
        self._flows = flows
        self._clock = clock
        self._metrics = metrics

    def admit(self, request: FlowRequest, flow: Flow | None, *, check_form: bool = True) -> Flow:
        """``flow``, as stored for ``request`` (None: gone), if this request may act on it."""
        if flow is None:
            raise self._missing(request)
        redirect_uri = flow.authorization.get("redirect_uri")
        if flow.expires_at <= self._clock.now():
            if check_form:  # someone acting on it, not each reload of its page
                self._metrics.sign_in_failed(flow.client_id, "expired")
                log_failure(flow, "expired")
            raise FlowExpiredError(flow.client_id, redirect_uri)
        if not request.browser_id or not same(flow.browser_digest, digest(request.browser_id)):
            self._metrics.sign_in_failed(flow.client_id, "wrong_browser")
            log_failure(flow, "wrong_browser")
            raise FlowBrowserMismatchError(flow.client_id, redirect_uri)
        if check_form and not same(door(request.csrf_token or ""), door(flow.csrf_token)):
            raise FlowFormExpiredError(flow.client_id, redirect_uri)
        return flow

    def ending(
        self, flow: Flow, request: FlowRequest, redirect_to: str | None = None
    ) -> FinishedFlow:
        """How ``flow`` ended, to keep in its place: where the browser went, sealed to that
        browser, so a double submit within DOUBLE_SUBMIT_SECONDS can follow it there (none
        before it is known: the page then says the sign-in finished)."""
        sealed = (
            seal(redirect_to, request.browser_id, flow.id)
            if request.browser_id and redirect_to
            else None
        )
        return FinishedFlow(
            client_id=flow.client_id,
            redirect_uri=flow.authorization.get("redirect_uri"),
            sealed_redirect=sealed,
            redirect_valid_until=self._clock.now() + DOUBLE_SUBMIT_SECONDS,
            response_mode=flow.authorization.get("response_mode", "query"),
        )

    def _missing(self, request: FlowRequest) -> FlowNotFoundError | FlowFinishedError:
        """Why a flow is gone: it ended (and where a double submit goes), or it never was."""
        ended = self._flows.load_finished(request.flow_id)
        if ended is None:
            return FlowNotFoundError()
        resume_at = None
        double_submit = (
            request.csrf_token is not None and self._clock.now() <= ended.redirect_valid_until
        )
        if double_submit and ended.sealed_redirect and request.browser_id:
            resume_at = unseal(ended.sealed_redirect, request.browser_id, request.flow_id)
        return FlowFinishedError(
            ended.client_id, ended.redirect_uri, resume_at, ended.response_mode
        )
