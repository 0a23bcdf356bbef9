"""The hosted sign-in as a state machine: email -> code -> verified identity (-> consent).

No HTTP and no Authlib here: the web layer renders each step, sign_in.py turns the verified
identity into an authorization response. Each step runs under a per-flow lock (flow_lock.py),
so a double submit never sends a second SMS, and saves the flow only once Link has answered.
Each step first checks that the request may act on the flow (admission.py) and that the flow
may take the step (models.TRANSITIONS): else FlowStepError, unchanged. What a step gives back
is outcomes.py's; which rate limits it counts against, rate_limits.py's.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes, Limits, first_supported
from oidc_link.errors import FlowNotFoundError
from oidc_link.ids import digest, new_id
from oidc_link.interaction.admission import (
    Admission,
    FlowRequest,
    client_named_by,
    code_form_token,
    form_token,
)
from oidc_link.interaction.flow_lock import HeldFlow, locked
from oidc_link.interaction.outcomes import (
    RATE_PROBLEMS,
    Completion,
    Problem,
    StepResult,
    log,
    log_failure,
)
from oidc_link.interaction.rate_limits import CountedAhead, SignInLimits
from oidc_link.interaction.read_ahead import CodeStepReads
from oidc_link.link import LinkClient, LinkError, LinkErrorKind
from oidc_link.logs import masked_email
from oidc_link.logs.direct import write_event
from oidc_link.metrics import Metrics
from oidc_link.models import AccountLinkTarget, Flow, FlowStep, Identity
from oidc_link.networks import client_network
from oidc_link.store import Store, Writes
from oidc_link.store.flows import Rider
from oidc_link.store.limits import Counting

# What the web layer and sign_in.py take from here; the rest is the submodules'.
__all__ = ["RATE_PROBLEMS", "Completion", "FlowRequest", "Interaction", "Problem", "StepResult"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Unicode's control characters (Cc: C0, DEL, C1), NUL included: never part of an address,
# and never sent on to Link or kept in the flow.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CODE = re.compile(r"^[0-9]{6}$")
_WHITESPACE = re.compile(r"\s")  # dropped from a typed code ("123 456" pasted)


class Interaction:
    """The steps of a sign-in, each under its flow's lock; Link answers, the store keeps."""

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
        self._admission = Admission(store.flows, clock, self._metrics)
        self._rate_limits = SignInLimits(
            store.limits, clock, limits, self._metrics, rehearse=rehearse_limits
        )

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
            csrf_token=form_token(client_id),
            created_at=now,
            expires_at=now + self._lifetimes.flow,
            account_link=account_link,
            locale=first_supported(authorization.get("ui_locales")),
            **(
                {"step": FlowStep.CONSENT, "email": identity.email, "identity": identity}
                if identity else {}
            ),
        )
        self._store.flows.add(flow)
        if identity is None:
            self._metrics.sign_in_started(client_id)
        return flow

    def view(self, request: FlowRequest) -> Flow:
        """The flow behind a hosted page, for the browser that started it."""
        return self._admission.admit(
            request, self._store.flows.load(request.flow_id), check_form=False
        )

    def submit_email(self, request: FlowRequest, email: str) -> StepResult:
        email = email.strip().lower()
        network = client_network(request.client_ip)
        # For an email that will get that far (well-formed, no rehearsal), the lookup and
        # the SMS are counted in the lock's round trip (the SMS for the client the form
        # names), each taken back in the release unless the step gets to its check, so
        # that each ends up counted as if counted there: one round trip before Link.
        ahead = CountedAhead(self._rate_limits)
        well_formed = _well_formed(email)
        rehearsed = self._rate_limits.rehearsed(email) if well_formed else None
        if well_formed and rehearsed is None:
            ahead.lookup = self._rate_limits.lookup_counting(network)
            client_id = client_named_by(request.csrf_token)
            if client_id is not None:
                ahead.sms_client = client_id
                ahead.sms = self._rate_limits.sms_counting(email, network, client_id)
        with self._locked(request.flow_id, ahead.countings()) as held:
            held.riders.append(ahead)  # refunds what the step does not keep
            flow = self._admission.admit(request, held.flow)
            flow.check_move(FlowStep.EMAIL)  # an email takes the flow back there first
            if flow.step == FlowStep.CODE and email == flow.email:
                # A double submit, or the back button: the code is already on its way.
                return StepResult(flow)
            # Back at the email step with what was typed: if Link or a limit refuses, the
            # page shows it again; the code step is saved only once a code is on its way.
            if not well_formed and _CONTROL.search(email):
                # The form comes back with what was typed, minus the characters refused.
                shown = _CONTROL.sub("", email)[:254] or None
                typed = self._restart(flow, email=shown)
                return self._refuse(held, typed, Problem.EMAIL_CONTROL_CHARACTERS)
            typed = self._restart(flow, email=email[:254] or None)
            if not well_formed:
                return self._refuse(held, typed, Problem.INVALID_EMAIL)
            refused = rehearsed
            if ahead.lookup is not None:
                refused = self._rate_limits.lookup_refusal(ahead.keep_lookup())
            if refused is not None:
                return self._refuse(held, typed, *refused)
            try:
                found = self._link.lookup(email)
            except LinkError as error:
                return self._link_problem(held, typed, error)
            if not found.exists or not found.client_secret:
                self._metrics.sign_in_failed(flow.client_id, "not_on_link")
                log_failure(flow, "not_on_link")
                return self._save(held, typed.advance(step=FlowStep.NOT_ON_LINK))
            counted = None
            if ahead.sms is not None and ahead.sms_client == flow.client_id:
                counted = ahead.keep_sms()  # counted for good: _send_code's
            return self._send_code(
                held, typed, found.client_secret, found.redacted_phone or "", network, counted
            )

    def resend_code(self, request: FlowRequest) -> StepResult:
        with self._locked(request.flow_id) as held:
            flow = self._admission.admit(request, held.flow)
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
        self,
        request: FlowRequest,
        code: str,
        finish: Callable[[Flow, Identity, Writes], str],
        read_ahead: Callable[[str, str], Rider | None] | None = None,
    ) -> StepResult | Completion:
        """Check the code with Link; on success the flow ends and ``finish`` says where to go.

        ``finish`` (sign_in.py's complete, as the page calls it) runs under the flow's
        lock, so a double submit finds the flow finished and is sent where the first went.
        What it writes it queues into the Writes given, sent with the flow's end and the
        lock's release: one round trip. ``read_ahead`` (sign_in.py's, for the client and
        the email the form's token names) gives what ``finish`` will read, to read in the
        lock's round trip instead; ``finish`` checks it is the client's and the email's.
        """
        code = _WHITESPACE.sub("", code)
        ahead = CodeStepReads(request.csrf_token, read_ahead, self._link)
        with self._locked(request.flow_id, ahead.riders) as held:
            flow = self._admission.admit(request, held.flow)
            # Another tab moved the flow on (another email, a lock-out), or a forged post.
            flow.check_at(FlowStep.CODE)
            assert flow.email and flow.link_client_secret  # set with every move to CODE
            if not _CODE.match(code):
                return self._refuse(held, flow, Problem.INVALID_CODE_FORMAT)
            secret, check = flow.link_client_secret, ahead.check(held)
            try:
                user = self._link.authenticate(flow.email, secret, code, check)
            except LinkError as error:
                return self._code_failure(held, flow, error)
            finally:
                ahead.send_checked(held)  # what the check wrote (the sandbox's state)
            if user.email.strip().lower() != flow.email:
                log.warning("Link confirmed a different email than the one typed; restarting")
                return self._refuse(held, self._restart(flow), Problem.LINK_MISMATCH)
            # The flow (read under the lock: this step's) ends first in the step's writes, a
            # plain pipeline (keys on several cluster slots): cut short, it fails closed.
            # Where the browser went is noted after; the lock's release sends them all.
            finished = flow
            city = None if self._store.compatible_layout else user.city  # 1fcd0cc: no city
            identity = Identity(flow.email, user.name, self._clock.now(), city=city)
            held.writes = self._store.writes()
            flows = self._store.flows
            flows.end(finished.id, self._admission.ending(finished, request), writes=held.writes)
            redirect_to = finish(finished, identity, held.writes)
            ending = self._admission.ending(finished, request, redirect_to)
            flows.note_finished(finished.id, ending, writes=held.writes)
            self._metrics.sign_in_completed(finished.client_id)
            # On the request's line when answering one (logs/direct.py write_event).
            write_event(
                log,
                logging.INFO,
                "Sign-in completed",
                (),
                {
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
            flow = self._admission.admit(request, held.flow)
            flow.check_at(FlowStep.CONSENT)
            finished = flow  # ends with the lock's release
            if finished.identity is None:
                raise FlowNotFoundError()
            redirect_to = approve(finished, finished.identity)
            held.finished = self._admission.ending(finished, request, redirect_to)
            return Completion(flow=finished, identity=finished.identity, redirect_to=redirect_to)

    def use_another_email(self, request: FlowRequest) -> Flow:
        with self._locked(request.flow_id) as held:
            flow = self._admission.admit(request, held.flow)
            flow.check_move(FlowStep.EMAIL)
            return self._save(held, self._restart(flow)).flow

    def cancel(self, request: FlowRequest, deny: Callable[[Flow], str]) -> str:
        """The user walks away; ``deny`` builds the ``access_denied`` redirect to the RP."""
        with self._locked(request.flow_id) as held:
            flow = self._admission.admit(request, held.flow)
            flow.check_move(FlowStep.ENDED)  # from any step
            finished = flow  # ends with the lock's release
            redirect_to = deny(finished)
            held.finished = self._admission.ending(finished, request, redirect_to)
            denied = "consent_denied" if finished.step == FlowStep.CONSENT else "cancelled"
            self._metrics.sign_in_failed(finished.client_id, denied)
            log_failure(finished, denied)
            return redirect_to

    # Steps.

    def _send_code(
        self,
        held: HeldFlow,
        flow: Flow,
        client_secret: str,
        redacted_phone: str,
        network: str,
        counted: Counting | None = None,
    ) -> StepResult:
        """Ask Link to text a code, within the per-flow and global SMS limits; ``network``
        is the client network asking (see client_network); ``counted``: the SMS limits
        already counted for it (refunded here if the flow's own limits refuse it first)."""
        assert flow.email
        now = self._clock.now()
        refused = self._rate_limits.sms(flow, network, now, counted)
        if refused is not None and counted is not None and refused[0] is not Problem.TOO_MANY_SMS:
            # Refused by the flow's own limits, checked before the counted ones: uncounted.
            held.riders.append(self._rate_limits.refund(counted))
        if refused is not None:
            return self._refuse(held, flow, *refused)
        try:
            started = self._link.start_verification(flow.email, client_secret)
        except LinkError as error:
            if error.kind is LinkErrorKind.CODE_EXPIRED:
                # Link's session behind this flow is over: only a fresh lookup can go on.
                return self._refuse(held, self._restart(flow), Problem.LINK_SESSION_EXPIRED)
            return self._link_problem(held, flow, error)
        self._metrics.sms_sent(flow.client_id)
        write_event(
            log,
            logging.INFO,
            "SMS code sent",
            (),
            {"event": "sms.sent", "client_id": flow.client_id, "sms_in_flow": flow.sms_sent + 1},
        )
        return self._save(
            held,
            flow.advance(
                step=FlowStep.CODE,
                redacted_phone=started.redacted_phone or redacted_phone,
                link_client_secret=started.client_secret,
                sms_sent=flow.sms_sent + 1,
                sms_sent_at=now,
                csrf_token=code_form_token(flow.csrf_token, flow.email, started.session_hint),
            ),
        )

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
        locked_out = flow.advance(
            step=FlowStep.LOCKED, link_client_secret=None, code_attempts=self._limits.code_attempts
        )
        return self._refuse(held, locked_out, Problem.TOO_MANY_ATTEMPTS)

    def _link_problem(self, held: HeldFlow, flow: Flow, error: LinkError) -> StepResult:
        """Link failed: the flow stays exactly as it was, so the user can simply retry."""
        log.warning("Link call failed: %s", error.kind.value)
        if error.kind is LinkErrorKind.RATE_LIMITED:
            return self._refuse(held, flow, Problem.LINK_RATE_LIMITED)
        return self._refuse(held, flow, Problem.LINK_UNAVAILABLE)

    def _restart(self, flow: Flow, **changes: str | None) -> Flow:
        """Back at the email step, with ``changes`` (one copy of the flow for both)."""
        reset = {"redacted_phone": None, "link_client_secret": None, "identity": None}
        return flow.advance(step=FlowStep.EMAIL, **reset, **changes)

    # Plumbing.

    def _locked(
        self, flow_id: str, riders: list[Rider] | None = None
    ) -> AbstractContextManager[HeldFlow]:
        """The flow's lock for one step (flow_lock.locked), polling with our ``sleep``."""
        return locked(self._store.flows, flow_id, self._sleep, riders or ())

    def _refuse(
        self, held: HeldFlow, flow: Flow, problem: Problem, detail: int | None = None
    ) -> StepResult:
        """Keep the flow as the page will show it, so the page can be a plain GET again."""
        self._metrics.sign_in_failed(flow.client_id, problem.value)
        log_failure(flow, problem.value)
        return StepResult(self._save(held, flow).flow, problem, detail)

    def _save(self, held: HeldFlow, flow: Flow) -> StepResult:
        """Keep ``flow`` as the step's outcome: saved as the lock is released, and if it is
        gone by then (finished or expired) the step fails with FlowNotFoundError."""
        held.save = flow
        return StepResult(flow)


def _well_formed(email: str) -> bool:
    """An address Link may be asked about: no control characters, the shape of one."""
    return len(email) <= 254 and not _CONTROL.search(email) and _EMAIL.match(email) is not None
