"""Which rate limits a sign-in step counts against, and what a refusal says: the lookups per
client network, an SMS's resend cooldown, resends per flow and counted SMS allowances, and
the sandbox's rehearsed limits. Counting is the store's (store/limits.py); words the page's."""

from __future__ import annotations

from typing import Any

from oidc_link.clock import Clock
from oidc_link.config import Limits
from oidc_link.interaction.outcomes import Problem
from oidc_link.metrics import Metrics
from oidc_link.models import Flow
from oidc_link.store.flows import Rider
from oidc_link.store.limits import Counting, LimitStore, RateLimit, Refund

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

# A limit reached: the problem to show, and the seconds to wait when there is an end to it.
Refusal = tuple[Problem, int | None]


class SignInLimits:
    """The [limits] of the email and code steps, held against one visitor's requests."""

    def __init__(
        self,
        counters: LimitStore,
        clock: Clock,
        limits: Limits,
        metrics: Metrics,
        *,
        rehearse: bool = False,
    ) -> None:
        """``rehearse``: answer the REHEARSED_LIMITS emails (the sandbox's)."""
        self._counters = counters
        self._clock = clock
        self._limits = limits
        self._metrics = metrics
        self._rehearse = rehearse

    def rehearsed(self, email: str) -> Refusal | None:
        """The limit a sandbox email rehearses, by its local part (None: a real email)."""
        if not self._rehearse:
            return None
        problem = REHEARSED_LIMITS.get(email.partition("@")[0])
        return (problem, REHEARSED_WAIT) if problem is not None else None

    def lookup_counting(self, network: str) -> Counting:
        """One Link lookup from the client network ``network`` (see client_network), to
        count in the flow lock's round trip: ``lookup_refusal`` reads the outcome, or
        ``refund`` takes it back when the step stops before its lookup."""
        limits = self._limits
        return self._counters.counting(
            [RateLimit("lookup_ip", network, limits.lookups_per_ip_window, limits.lookups_per_ip)]
        )

    def lookup_refusal(self, counted: Counting) -> Refusal | None:
        """Whether the lookup ``counted`` went over its limit (and how long to wait)."""
        wait = self._wait_after(counted.reached)
        return (Problem.TOO_MANY_LOOKUPS, wait) if wait is not None else None

    def refund(self, counted: Counting) -> Refund:
        """Take back what ``counted`` counted, in the lock's release."""
        return self._counters.refund(counted)

    def sms_counting(self, email: str, network: str, client_id: str) -> Counting | None:
        """One more SMS to ``email`` for ``client_id``, to count in the flow lock's round
        trip before the flow is read (None: the SMS-counting limits are all off). ``sms``
        reads the outcome when the flow turns out to be that client's; else ``refund``."""
        counted = self._sms_limits(email, network, client_id)
        return self._counters.counting(counted) if counted else None

    def sms(
        self, flow: Flow, network: str, now: int, counted: Counting | None = None
    ) -> Refusal | None:
        """One more SMS for ``flow`` at ``now``: first the flow's own cooldown and resends,
        then (counted) the email's, the network's and the client's allowances: ``counted``
        when it counted them already (``sms_counting`` for this flow's email and client),
        else counted here, one round trip."""
        assert flow.email
        limits = self._limits
        if flow.sms_sent and now - flow.sms_sent_at < limits.resend_cooldown:
            self._metrics.rate_limited("resend_cooldown")
            return Problem.RESEND_TOO_SOON, limits.resend_cooldown - (now - flow.sms_sent_at)
        if flow.sms_sent > limits.resends:
            self._metrics.rate_limited("resends")
            return Problem.NO_MORE_RESENDS, None
        if counted is not None:
            wait = self._wait_after(counted.reached)
        else:
            every = self._sms_limits(flow.email, network, flow.client_id)
            wait = self._wait_for(*every) if every else None
        return (Problem.TOO_MANY_SMS, wait) if wait is not None else None

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

    def _wait_for(self, *limits: RateLimit) -> int | None:
        """Count the event against each limit in order (one round trip); when one is over
        (the later ones are then left uncounted), the seconds until its window ends, for
        the page to say when to try again; None when none is over."""
        return self._wait_after(self._counters.first_reached(limits))

    def _wait_after(self, reached: RateLimit | None) -> int | None:
        if reached is None:
            return None
        self._metrics.rate_limited(LIMIT_OF_COUNTER[reached.kind])
        return reached.window - self._clock.now() % reached.window


class CountedAhead:
    """What the email step counts in the lock's round trip, before it reads the flow; and,
    as a rider of the release's round trip, the refund of each counting the step did not
    keep (``keep_lookup``, ``keep_sms``: it got to that check). Decided when the release is
    queued, so a step that keeps both (a code sent) builds no refund at all."""

    def __init__(self, limits: SignInLimits) -> None:
        self._limits = limits
        self.lookup: Counting | None = None
        self.sms: Counting | None = None
        self.sms_client: str | None = None
        self._lookup_kept = False
        self._sms_kept = False
        self._refunds: list[Refund] = []

    def countings(self) -> list[Rider]:
        return [counting for counting in (self.lookup, self.sms) if counting is not None]

    def keep_lookup(self) -> Counting:
        """The lookup counted for good (answered by now): its check reads it."""
        assert self.lookup is not None
        self._lookup_kept = True
        return self.lookup

    def keep_sms(self) -> Counting:
        """The SMS counted for good (answered by now): ``SignInLimits.sms`` reads it."""
        assert self.sms is not None
        self._sms_kept = True
        return self.sms

    def queue(self, pipeline: Any) -> int:
        refunds: list[Refund] = []
        if self.lookup is not None and not self._lookup_kept:
            refunds.append(self._limits.refund(self.lookup))
        if self.sms is not None and not self._sms_kept:
            refunds.append(self._limits.refund(self.sms))
        self._refunds, size = refunds, 0
        for refund in refunds:
            size += refund.queue(pipeline)
        return size

    def answer(self, results: list[Any]) -> None:
        start = 0
        for refund in self._refunds:
            refund.answer(results[start : start + len(refund.keys)])
            start += len(refund.keys)
