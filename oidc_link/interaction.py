"""The hosted sign-in as a state machine: email -> code -> verified identity.

No HTTP and no Authlib here: the web layer renders each step, oauth.py turns the verified
identity into an authorization response.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass

from oidc_link.clock import Clock
from oidc_link.config import Lifetimes
from oidc_link.errors import FlowBrowserMismatchError, FlowNotFoundError, FlowStepError
from oidc_link.ids import digest, new_id, new_secret, same
from oidc_link.link import LinkClient, LinkError, LinkErrorKind
from oidc_link.models import Flow, FlowStep, Identity
from oidc_link.store import Store

log = logging.getLogger(__name__)

MAX_CODE_ATTEMPTS = 5
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CODE = re.compile(r"^[0-9]{6}$")


class Problem(enum.Enum):
    """Why a step did not move forward; the page turns it into words."""

    INVALID_EMAIL = "invalid_email"
    INVALID_CODE_FORMAT = "invalid_code_format"
    WRONG_CODE = "wrong_code"
    CODE_EXPIRED = "code_expired"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    LINK_UNAVAILABLE = "link_unavailable"


@dataclass(frozen=True)
class StepResult:
    flow: Flow
    problem: Problem | None = None


@dataclass(frozen=True)
class Completion:
    """A finished flow: the original authorization request and who signed in."""

    flow: Flow
    identity: Identity


class Interaction:
    def __init__(self, store: Store, link: LinkClient, clock: Clock, lifetimes: Lifetimes) -> None:
        self._store = store
        self._link = link
        self._clock = clock
        self._lifetimes = lifetimes

    def start(self, client_id: str, authorization: dict[str, str], browser_id: str) -> Flow:
        now = self._clock.now()
        flow = Flow(
            id=new_id("flow", 24),
            browser_digest=digest(browser_id),
            client_id=client_id,
            authorization=authorization,
            csrf_token=new_secret(24),
            created_at=now,
            expires_at=now + self._lifetimes.flow,
        )
        self._store.add_flow(flow)
        return flow

    def resume(self, flow_id: str, browser_id: str | None) -> Flow:
        """The flow behind a hosted page, only for the browser that started it."""
        flow = self._store.load_flow(flow_id)
        if flow is None or flow.expires_at <= self._clock.now():
            raise FlowNotFoundError()
        if not browser_id or not same(flow.browser_digest, digest(browser_id)):
            raise FlowBrowserMismatchError()
        return flow

    def submit_email(self, flow: Flow, email: str) -> StepResult:
        email = email.strip().lower()
        if flow.step not in (FlowStep.EMAIL, FlowStep.NOT_ON_LINK):
            flow = self._restart(flow)
        if not _EMAIL.match(email) or len(email) > 254:
            return StepResult(flow.advance(email=email or None), Problem.INVALID_EMAIL)
        try:
            found = self._link.lookup(email)
            if not found.exists or not found.client_secret:
                return self._save(flow.advance(step=FlowStep.NOT_ON_LINK, email=email))
            started = self._link.start_verification(email, found.client_secret)
        except LinkError as error:
            log.warning("Link lookup or verification failed: %s", error.kind.value)
            return StepResult(flow.advance(email=email), Problem.LINK_UNAVAILABLE)
        return self._save(
            flow.advance(
                step=FlowStep.CODE,
                email=email,
                redacted_phone=started.redacted_phone,
                link_client_secret=started.client_secret,
                code_attempts=0,
            )
        )

    def resend_code(self, flow: Flow) -> StepResult:
        self._require_step(flow, FlowStep.CODE)
        assert flow.email and flow.link_client_secret
        try:
            started = self._link.start_verification(flow.email, flow.link_client_secret)
        except LinkError as error:
            return self._code_failure(flow, error)
        return self._save(
            flow.advance(
                redacted_phone=started.redacted_phone,
                link_client_secret=started.client_secret,
                code_attempts=0,
            )
        )

    def submit_code(self, flow: Flow, code: str) -> StepResult | Completion:
        """Check the code with Link; on success the flow is consumed and cannot finish twice."""
        self._require_step(flow, FlowStep.CODE)
        assert flow.email and flow.link_client_secret
        code = re.sub(r"\s", "", code)
        if not _CODE.match(code):
            return StepResult(flow, Problem.INVALID_CODE_FORMAT)
        try:
            user = self._link.authenticate(flow.email, flow.link_client_secret, code)
        except LinkError as error:
            return self._code_failure(flow, error)
        finished = self._store.take_flow(flow.id)
        if finished is None:
            raise FlowNotFoundError()
        identity = Identity(email=user.email.lower(), name=user.name, auth_time=self._clock.now())
        return Completion(flow=finished, identity=identity)

    def use_another_email(self, flow: Flow) -> Flow:
        return self._save(self._restart(flow)).flow

    def cancel(self, flow: Flow) -> Flow:
        """The user walks away: the flow ends so the RP can be told ``access_denied``."""
        finished = self._store.take_flow(flow.id)
        if finished is None:
            raise FlowNotFoundError()
        return finished

    def _code_failure(self, flow: Flow, error: LinkError) -> StepResult:
        if error.kind is LinkErrorKind.INVALID_CODE:
            attempts = flow.code_attempts + 1
            if attempts >= MAX_CODE_ATTEMPTS:
                return StepResult(self._save(self._restart(flow)).flow, Problem.TOO_MANY_ATTEMPTS)
            return StepResult(
                self._save(flow.advance(code_attempts=attempts)).flow, Problem.WRONG_CODE
            )
        if error.kind is LinkErrorKind.CODE_EXPIRED:
            return StepResult(flow, Problem.CODE_EXPIRED)
        if error.kind is LinkErrorKind.TOO_MANY_ATTEMPTS:
            # Link has closed this verification session: only a fresh lookup can continue.
            return StepResult(self._save(self._restart(flow)).flow, Problem.TOO_MANY_ATTEMPTS)
        log.warning("Link verification failed: %s", error.kind.value)
        return StepResult(flow, Problem.LINK_UNAVAILABLE)

    def _restart(self, flow: Flow) -> Flow:
        return flow.advance(
            step=FlowStep.EMAIL, redacted_phone=None, link_client_secret=None, code_attempts=0
        )

    def _require_step(self, flow: Flow, step: str) -> None:
        if flow.step != step:
            raise FlowStepError()

    def _save(self, flow: Flow) -> StepResult:
        if not self._store.save_flow(flow):
            raise FlowNotFoundError()
        return StepResult(flow)
