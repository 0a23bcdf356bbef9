"""The hosted sign-in as a state machine: email -> code -> verified identity (-> consent).

No HTTP and no Authlib here: the web layer renders each step, oauth.py turns the verified
identity into an authorization response. Each step runs under a per-flow lock, so a double
submit never sends a second SMS, and saves the flow only once Link has answered. Each step
first checks that the flow may take it (models.TRANSITIONS): else FlowStepError, unchanged.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes, Limits
from oidc_link.errors import (
    FlowBrowserMismatchError,
    FlowBusyError,
    FlowExpiredError,
    FlowFinishedError,
    FlowFormExpiredError,
    FlowNotFoundError,
)
from oidc_link.ids import digest, new_id, new_secret, same
from oidc_link.link import LinkClient, LinkError, LinkErrorKind
from oidc_link.logs import masked_email
from oidc_link.metrics import Metrics
from oidc_link.models import AccountLinkTarget, FinishedFlow, Flow, FlowStep, Identity
from oidc_link.networks import client_network
from oidc_link.sealed import seal, unseal
from oidc_link.store import RateLimit, Store

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Unicode's control characters (Cc: C0, DEL, C1), NUL included: never part of an address,
# and never sent on to Link or kept in the flow.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CODE = re.compile(r"^[0-9]{6}$")
# Longer than the slowest Link call we allow (timeouts plus retries).
LOCK_SECONDS = 60
LOCK_WAIT_SECONDS = 20.0
LOCK_POLL_SECONDS = 0.05
# A double click on "Verify" lands where the first click went, but only this soon after:
# later, the code has likely been redeemed and replaying it would only hurt.
DOUBLE_SUBMIT_SECONDS = 10


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


# The rate-limit counters of the store, by the [limits] setting they are held to. None is
# keyed on a value that unrelated people share (such as a redacted phone number), so no one
# can spend another person's allowance: see docs/security.md.
LIMIT_OF_COUNTER = {
    "lookup_ip": "lookups_per_ip",
    "sms_email_network": "sms_per_email",
    "sms_email": "sms_per_email_ceiling",
    "client_sms": "client_daily_sms",
}
# Sandbox only: emails whose local part answers as if one of our limits was reached, so a
# developer can see each limit page with the SMS limits off (docs/configuration.md).
REHEARSED_LIMITS = {
    "too-many-lookups": Problem.TOO_MANY_LOOKUPS,
    "too-many-sms": Problem.TOO_MANY_SMS,
}
REHEARSED_WAIT = 300  # seconds the rehearsed limit pages say to wait


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
class FlowRequest:
    """Who asks: the flow, the browser's binding cookie, the form's CSRF token, the address."""

    flow_id: str
    browser_id: str | None
    csrf_token: str | None = None
    client_ip: str = ""


@dataclass(frozen=True)
class StepResult:
    flow: Flow
    problem: Problem | None = None
    # Attempts left after a wrong code, or seconds to wait before a new code (a resend, or
    # a limit's window to end).
    detail: int | None = None


@dataclass
class HeldFlow:
    """A flow locked for one step: the flow as read under the lock (None: gone), and the
    write that ends the step (the flow's new state, or how it ended), sent with the lock's
    release. Each step's last store write is one of these two."""

    flow: Flow | None
    save: Flow | None = None
    finished: FinishedFlow | None = None


@dataclass(frozen=True)
class Completion:
    """A finished flow: who signed in and where the browser goes next."""

    flow: Flow
    identity: Identity
    redirect_to: str


class Interaction:
    def __init__(
        self,
        store: Store,
        link: LinkClient,
        clock: Clock,
        lifetimes: Lifetimes,
        limits: Limits,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Metrics | None = None,
        *,
        rehearse_limits: bool = False,
    ) -> None:
        """``rehearse_limits``: answer the REHEARSED_LIMITS emails (the sandbox's)."""
        self._store = store
        self._link = link
        self._clock = clock
        self._lifetimes = lifetimes
        self._limits = limits
        self._sleep = sleep
        self._metrics = metrics or Metrics.standalone()
        self._rehearse_limits = rehearse_limits

    def start(
        self,
        client_id: str,
        authorization: dict[str, str],
        browser_id: str,
        identity: Identity | None = None,
        account_link: AccountLinkTarget | None = None,
    ) -> Flow:
        """A new sign-in at the email step; or, for someone already signed in (by SMS just
        now, or by the SSO session) whose client needs their consent, at the consent step."""
        now = self._clock.now()
        flow = Flow(
            id=new_id("flow", 24),
            browser_digest=digest(browser_id),
            client_id=client_id,
            authorization=authorization,
            csrf_token=new_secret(24),
            created_at=now,
            expires_at=now + self._lifetimes.flow,
            account_link=account_link,
            **(
                {"step": FlowStep.CONSENT, "email": identity.email, "identity": identity}
                if identity
                else {}
            ),
        )
        self._store.flows.add(flow)
        if identity is None:
            self._metrics.sign_in_started(client_id)
        return flow

    def view(self, request: FlowRequest) -> Flow:
        """The flow behind a hosted page, for the browser that started it."""
        return self._resume(request, self._store.flows.load(request.flow_id), check_form=False)

    def submit_email(self, request: FlowRequest, email: str) -> StepResult:
        email = email.strip().lower()
        with self._locked(request.flow_id) as held:
            flow = self._resume(request, held.flow)
            flow.check_move(FlowStep.EMAIL)  # an email takes the flow back there first
            if flow.step == FlowStep.CODE and email == flow.email:
                # A double submit, or the back button: the code is already on its way.
                return StepResult(flow)
            # Back at the email step with what was typed: if Link or a limit refuses, the
            # page shows it again; the code step is saved only once a code is on its way.
            if _CONTROL.search(email):
                # The form comes back with what was typed, minus the characters refused.
                shown = _CONTROL.sub("", email)[:254] or None
                typed = self._restart(flow).advance(email=shown)
                return self._refuse(held, typed, Problem.EMAIL_CONTROL_CHARACTERS)
            typed = self._restart(flow).advance(email=email[:254] or None)
            if not _EMAIL.match(email) or len(email) > 254:
                return self._refuse(held, typed, Problem.INVALID_EMAIL)
            rehearsed = self._rehearsed_limit(email)
            if rehearsed is not None:
                return self._refuse(held, typed, rehearsed, REHEARSED_WAIT)
            network = client_network(request.client_ip)
            limits = self._limits
            wait = self._wait_for(
                RateLimit("lookup_ip", network, limits.lookups_per_ip_window, limits.lookups_per_ip)
            )
            if wait is not None:
                return self._refuse(held, typed, Problem.TOO_MANY_LOOKUPS, wait)
            try:
                found = self._link.lookup(email)
            except LinkError as error:
                return self._link_problem(held, typed, error)
            if not found.exists or not found.client_secret:
                self._metrics.sign_in_failed(flow.client_id, "not_on_link")
                _log_failure(flow, "not_on_link")
                return self._save(
                    held, self._restart(flow).advance(step=FlowStep.NOT_ON_LINK, email=email)
                )
            return self._send_code(
                held, typed, found.client_secret, found.redacted_phone or "", network
            )

    def resend_code(self, request: FlowRequest) -> StepResult:
        with self._locked(request.flow_id) as held:
            flow = self._resume(request, held.flow)
            flow.check_at(FlowStep.CODE)
            assert flow.link_client_secret  # set with every move to CODE (_send_code)
            return self._send_code(
                held,
                flow,
                flow.link_client_secret,
                flow.redacted_phone or "",
                client_network(request.client_ip),
            )

    def submit_code(
        self, request: FlowRequest, code: str, finish: Callable[[Flow, Identity], str]
    ) -> StepResult | Completion:
        """Check the code with Link; on success the flow ends and ``finish`` says where to go.

        ``finish`` (sign_in.py's complete, as the page calls it) runs under the flow's
        lock, so a double submit finds the flow finished and is sent where the first went.
        """
        code = re.sub(r"\s", "", code)
        with self._locked(request.flow_id) as held:
            flow = self._resume(request, held.flow)
            # Another tab moved the flow on (another email, a lock-out), or a forged post.
            flow.check_at(FlowStep.CODE)
            assert flow.email and flow.link_client_secret  # set with every move to CODE
            if not _CODE.match(code):
                return self._refuse(held, flow, Problem.INVALID_CODE_FORMAT)
            try:
                user = self._link.authenticate(flow.email, flow.link_client_secret, code)
            except LinkError as error:
                return self._code_failure(held, flow, error)
            if user.email.strip().lower() != flow.email:
                log.warning("Link confirmed a different email than the one typed; restarting")
                return self._refuse(held, self._restart(flow), Problem.LINK_MISMATCH)
            finished = self._store.flows.take(flow.id)
            if finished is None:
                raise FlowNotFoundError()
            identity = Identity(email=flow.email, name=user.name, auth_time=self._clock.now())
            redirect_to = finish(finished, identity)
            self._remember_end(held, finished, request, redirect_to)
            self._metrics.sign_in_completed(finished.client_id)
            log.info(
                "Sign-in completed",
                extra={
                    "event": "sign_in.completed",
                    "client_id": finished.client_id,
                    "email": masked_email(identity.email),
                },
            )
            return Completion(flow=finished, identity=identity, redirect_to=redirect_to)

    def allow(self, request: FlowRequest, approve: Callable[[Flow, Identity], str]) -> Completion:
        """The person allowed the client: the flow ends and ``approve`` says where to go.

        Like ``submit_code``, ``approve`` runs under the lock, so a double submit is sent
        where the first went; Deny is ``cancel``.
        """
        with self._locked(request.flow_id) as held:
            flow = self._resume(request, held.flow)
            flow.check_at(FlowStep.CONSENT)
            finished = self._store.flows.take(flow.id)
            if finished is None or finished.identity is None:
                raise FlowNotFoundError()
            redirect_to = approve(finished, finished.identity)
            self._remember_end(held, finished, request, redirect_to)
            return Completion(flow=finished, identity=finished.identity, redirect_to=redirect_to)

    def use_another_email(self, request: FlowRequest) -> Flow:
        with self._locked(request.flow_id) as held:
            flow = self._resume(request, held.flow)
            flow.check_move(FlowStep.EMAIL)
            return self._save(held, self._restart(flow)).flow

    def cancel(self, request: FlowRequest, deny: Callable[[Flow], str]) -> str:
        """The user walks away; ``deny`` builds the ``access_denied`` redirect to the RP."""
        with self._locked(request.flow_id) as held:
            flow = self._resume(request, held.flow)
            flow.check_move(FlowStep.ENDED)  # from any step
            finished = self._store.flows.take(flow.id)
            if finished is None:
                raise FlowNotFoundError()
            redirect_to = deny(finished)
            self._remember_end(held, finished, request, redirect_to)
            denied = "consent_denied" if finished.step == FlowStep.CONSENT else "cancelled"
            self._metrics.sign_in_failed(finished.client_id, denied)
            _log_failure(finished, denied)
            return redirect_to

    # Steps.

    def _send_code(
        self, held: HeldFlow, flow: Flow, client_secret: str, redacted_phone: str, network: str
    ) -> StepResult:
        """Ask Link to text a code, within the per-flow and global SMS limits; ``network``
        is the client network asking (see client_network)."""
        assert flow.email
        now = self._clock.now()
        limits = self._limits
        if flow.sms_sent and now - flow.sms_sent_at < limits.resend_cooldown:
            wait = limits.resend_cooldown - (now - flow.sms_sent_at)
            self._metrics.rate_limited("resend_cooldown")
            return self._refuse(held, flow, Problem.RESEND_TOO_SOON, wait)
        if flow.sms_sent > limits.resends:
            self._metrics.rate_limited("resends")
            return self._refuse(held, flow, Problem.NO_MORE_RESENDS)
        counted = self._sms_limits(flow.email, network, flow.client_id)
        wait = self._wait_for(*counted) if counted else None
        if wait is not None:
            return self._refuse(held, flow, Problem.TOO_MANY_SMS, wait)
        try:
            started = self._link.start_verification(flow.email, client_secret)
        except LinkError as error:
            if error.kind is LinkErrorKind.CODE_EXPIRED:
                # Link's session behind this flow is over: only a fresh lookup can go on.
                return self._refuse(held, self._restart(flow), Problem.LINK_SESSION_EXPIRED)
            return self._link_problem(held, flow, error)
        self._metrics.sms_sent(flow.client_id)
        log.info(
            "SMS code sent",
            extra={
                "event": "sms.sent",
                "client_id": flow.client_id,
                "sms_in_flow": flow.sms_sent + 1,
            },
        )
        return self._save(
            held,
            flow.advance(
                step=FlowStep.CODE,
                redacted_phone=started.redacted_phone or redacted_phone,
                link_client_secret=started.client_secret,
                sms_sent=flow.sms_sent + 1,
                sms_sent_at=now,
            ),
        )

    def _sms_limits(self, email: str, network: str, client_id: str) -> list[RateLimit]:
        """The limits one more SMS counts against, in this order: an SMS the asking network
        is over its own allowance for is not counted towards the email's ceiling, so spent
        networks cannot keep filling it. Limits set to None (off) are left out."""
        limits = self._limits
        every = (
            (
                "sms_email_network",
                email + "\n" + network,
                limits.sms_per_email_window,
                limits.sms_per_email,
            ),
            ("sms_email", email, limits.sms_per_email_ceiling_window, limits.sms_per_email_ceiling),
            ("client_sms", client_id, 86_400, limits.client_daily_sms),
        )
        return [
            RateLimit(kind, subject, window, limit)
            for kind, subject, window, limit in every
            if limit is not None
        ]

    def _code_failure(self, held: HeldFlow, flow: Flow, error: LinkError) -> StepResult:
        if error.kind is LinkErrorKind.INVALID_CODE:
            attempts = flow.code_attempts + 1
            if attempts >= self._limits.code_attempts:
                self._metrics.rate_limited("code_attempts")
                return self._lock_out(held, flow)
            left = self._limits.code_attempts - attempts
            return self._refuse(
                held, flow.advance(code_attempts=attempts), Problem.WRONG_CODE, left
            )
        if error.kind is LinkErrorKind.TOO_MANY_ATTEMPTS:
            return self._lock_out(held, flow)
        if error.kind is LinkErrorKind.CODE_EXPIRED:
            return self._refuse(held, flow, Problem.CODE_EXPIRED)
        return self._link_problem(held, flow, error)

    def _lock_out(self, held: HeldFlow, flow: Flow) -> StepResult:
        """Too many wrong codes: the flow ends; only the way back to the site is left."""
        locked = flow.advance(
            step=FlowStep.LOCKED, link_client_secret=None, code_attempts=self._limits.code_attempts
        )
        return self._refuse(held, locked, Problem.TOO_MANY_ATTEMPTS)

    def _link_problem(self, held: HeldFlow, flow: Flow, error: LinkError) -> StepResult:
        """Link failed: the flow stays exactly as it was, so the user can simply retry."""
        log.warning("Link call failed: %s", error.kind.value)
        if error.kind is LinkErrorKind.RATE_LIMITED:
            return self._refuse(held, flow, Problem.LINK_RATE_LIMITED)
        return self._refuse(held, flow, Problem.LINK_UNAVAILABLE)

    def _restart(self, flow: Flow) -> Flow:
        return flow.advance(
            step=FlowStep.EMAIL, redacted_phone=None, link_client_secret=None, identity=None
        )

    # Plumbing.

    def _resume(self, request: FlowRequest, flow: Flow | None, *, check_form: bool = True) -> Flow:
        """``flow``, as stored for ``request`` (None: gone), if this request may act on it."""
        if flow is None:
            raise self._missing(request)
        redirect_uri = flow.authorization.get("redirect_uri")
        if flow.expires_at <= self._clock.now():
            if check_form:  # someone acting on it, not each reload of its page
                self._metrics.sign_in_failed(flow.client_id, "expired")
                _log_failure(flow, "expired")
            raise FlowExpiredError(flow.client_id, redirect_uri)
        if not request.browser_id or not same(flow.browser_digest, digest(request.browser_id)):
            self._metrics.sign_in_failed(flow.client_id, "wrong_browser")
            _log_failure(flow, "wrong_browser")
            raise FlowBrowserMismatchError(flow.client_id, redirect_uri)
        if check_form and not same(request.csrf_token or "", flow.csrf_token):
            raise FlowFormExpiredError(flow.client_id, redirect_uri)
        return flow

    def _missing(self, request: FlowRequest) -> FlowNotFoundError | FlowFinishedError:
        """Why a flow is gone: it ended (and where a double submit goes), or it never was."""
        ended = self._store.flows.load_finished(request.flow_id)
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

    def _remember_end(
        self, held: HeldFlow, flow: Flow, request: FlowRequest, redirect_to: str
    ) -> None:
        """Remember how the flow ended, written as its lock is released (one round trip)."""
        sealed = seal(redirect_to, request.browser_id, flow.id) if request.browser_id else None
        held.finished = FinishedFlow(
            client_id=flow.client_id,
            redirect_uri=flow.authorization.get("redirect_uri"),
            sealed_redirect=sealed,
            redirect_valid_until=self._clock.now() + DOUBLE_SUBMIT_SECONDS,
            response_mode=flow.authorization.get("response_mode", "query"),
        )

    def _rehearsed_limit(self, email: str) -> Problem | None:
        """The limit a sandbox email rehearses, by its local part (None: a real email)."""
        if not self._rehearse_limits:
            return None
        return REHEARSED_LIMITS.get(email.partition("@")[0])

    def _wait_for(self, *limits: RateLimit) -> int | None:
        """Count the event against each limit in order (one round trip); when one is over
        (the later ones are then left uncounted), the seconds until its window ends, for
        the page to say when to try again; None when none is over."""
        reached = self._store.limits.first_reached(limits)
        if reached is None:
            return None
        self._metrics.rate_limited(LIMIT_OF_COUNTER[reached.kind])
        return reached.window - self._clock.now() % reached.window

    @contextmanager
    def _locked(self, flow_id: str) -> Iterator[HeldFlow]:
        """Hold the flow's lock for the block: the block gets the flow as read under the
        lock, in the same round trip as the lock, and the write that ends the step goes
        with the lock's release, in one round trip too."""
        token, flow = self._store.flows.lock_and_load(flow_id, LOCK_SECONDS)
        waited = 0.0
        while token is None and waited < LOCK_WAIT_SECONDS:
            self._sleep(LOCK_POLL_SECONDS)
            waited += LOCK_POLL_SECONDS
            token, flow = self._store.flows.lock_and_load(flow_id, LOCK_SECONDS)
        if token is None:
            raise FlowBusyError()
        held = HeldFlow(flow)
        try:
            yield held
        finally:
            saved = self._store.flows.release(flow_id, token, held.save, held.finished)
        if held.save is not None and not saved:
            raise FlowNotFoundError()  # it ended or expired meanwhile, and stays gone

    def _refuse(
        self, held: HeldFlow, flow: Flow, problem: Problem, detail: int | None = None
    ) -> StepResult:
        """Keep the flow as the page will show it, so the page can be a plain GET again."""
        self._metrics.sign_in_failed(flow.client_id, problem.value)
        _log_failure(flow, problem.value)
        return StepResult(self._save(held, flow).flow, problem, detail)

    def _save(self, held: HeldFlow, flow: Flow) -> StepResult:
        """Keep ``flow`` as the step's outcome: saved as the lock is released, and if it is
        gone by then (finished or expired) the step fails with FlowNotFoundError."""
        held.save = flow
        return StepResult(flow)


def _log_failure(flow: Flow, reason: str) -> None:
    """A sign-in step that did not move forward, and why (the metrics' reasons)."""
    log.info(
        "Sign-in step failed: %s",
        reason,
        extra={"event": "sign_in.failed", "reason": reason, "client_id": flow.client_id},
    )
