"""The hosted sign-in state machine with the sandbox Link client: browser binding, CSRF, expiry,
email and code steps, attempt and SMS limits, magic codes, resend, another email, cancel,
completion, finished flows and the per-flow lock."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Lifetimes, Limits, SandboxUser
from oidc_link.errors import (
    FlowBrowserMismatchError,
    FlowBusyError,
    FlowError,
    FlowExpiredError,
    FlowFinishedError,
    FlowFormExpiredError,
    FlowNotFoundError,
    FlowStepError,
)
from oidc_link.ids import digest
from oidc_link.interaction import Completion, FlowRequest, Interaction, Problem, StepResult
from oidc_link.interaction.admission import (
    DOUBLE_SUBMIT_SECONDS,
    client_named_by,
    code_form_token,
    door,
    email_named_by,
    session_named_by,
)
from oidc_link.interaction.flow_lock import LOCK_POLL_SECONDS, LOCK_WAIT_SECONDS
from oidc_link.link import (
    CheckAhead,
    LinkClient,
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)
from oidc_link.link.sandbox import CODE_LIFETIME, SandboxLinkClient
from oidc_link.models import Flow, FlowStep, Identity
from oidc_link.store import Store, keyspace
from oidc_link.store.keyspace import FLOW_AFTERLIFE
from tests.conftest import ON_REDIS_CLUSTER
from tests.sandbox_console import announced_code, wrong_code_for

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

BROWSER = "browser-cookie-value-1"
OTHER_BROWSER = "browser-cookie-value-2"
CLIENT_IP = "203.0.113.7"
OTHER_IP = "198.51.100.9"
REDIRECT_URI = "https://shop.example.com/cb"
AUTHORIZATION = {
    "response_type": "code",
    "client_id": "shop",
    "redirect_uri": REDIRECT_URI,
    "scope": "openid email",
    "state": "af0ifjsldkj",
}
# What finish() and deny() answer: the code in it is what a double submit must get back.
RP_CODE = "SplxlOBeZQQYbYS6WxSbIA-rp-code"
CALLBACK = f"{REDIRECT_URI}?code={RP_CODE}&state=af0ifjsldkj"
DENIED = f"{REDIRECT_URI}?error=access_denied&state=af0ifjsldkj"
JENNY = "jenny@example.com"
SAM = "sam@example.com"
# Another user whose redacted phone (+1********23) is the same as Jenny's.
JEN = "jen@example.org"
USERS = [
    SandboxUser(email=JENNY, phone="+14155550123", name="Jenny Rosen"),
    SandboxUser(email=SAM, phone="+447700900123"),
    SandboxUser(email=JEN, phone="+14155550923"),
]


class Finisher:
    """A ``finish``/``deny`` callback that records its calls and answers one redirect."""

    def __init__(self, redirect_to: str) -> None:
        self.redirect_to = redirect_to
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> str:
        # The flow (and identity) finished; not the Writes batch a ``finish`` queues into.
        self.calls.append(args[:2])
        return self.redirect_to


class RecordingSleep:
    """The injected ``sleep``: records each poll, and can run something after the n-th."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.after: tuple[int, Callable[[], None]] | None = None

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.after is not None and len(self.calls) == self.after[0]:
            self.after[1]()


class ScriptedLink:
    """A Link client that answers like the sandbox unless told to fail or to confirm
    someone else: a test double implementing the LinkClient protocol."""

    def __init__(self, real: LinkClient) -> None:
        self.real = real
        self.failures: dict[str, LinkErrorKind] = {}
        self.confirmed_email: str | None = None

    def _maybe_fail(self, call: str) -> None:
        if call in self.failures:
            raise LinkError(self.failures[call], "scripted")

    def lookup(self, email: str) -> LookupResult:
        self._maybe_fail("lookup")
        return self.real.lookup(email)

    def start_verification(self, email: str, client_secret: str) -> VerificationStarted:
        self._maybe_fail("start_verification")
        return self.real.start_verification(email, client_secret)

    def check_ahead(self, session_hint: str) -> CheckAhead | None:
        return self.real.check_ahead(session_hint)

    def authenticate(
        self, email: str, client_secret: str, code: str, ahead: CheckAhead | None = None
    ) -> LinkUser:
        self._maybe_fail("authenticate")
        user = self.real.authenticate(email, client_secret, code, ahead)
        if self.confirmed_email is not None:
            return LinkUser(email=self.confirmed_email, name=user.name)
        return user


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture
def lifetimes() -> Lifetimes:
    return Lifetimes()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def link(clock: FixedClock, messages: list[str], store: Store) -> ScriptedLink:
    return ScriptedLink(SandboxLinkClient(USERS, clock, messages.append, store.sandbox))


@pytest.fixture
def make_interaction(
    store: Store, clock: FixedClock, link: ScriptedLink, lifetimes: Lifetimes, sleep: RecordingSleep
) -> Callable[..., Interaction]:
    """An Interaction on the test's store, Link and clock, with the limits given."""

    def make(limits: Limits | None = None, lifetimes_: Lifetimes | None = None) -> Interaction:
        return Interaction(
            store, link, clock, lifetimes_ or lifetimes, limits or Limits(), sleep=sleep
        )

    return make


@pytest.fixture
def interaction(make_interaction: Callable[..., Interaction]) -> Interaction:
    return make_interaction()


@pytest.fixture
def finish() -> Finisher:
    return Finisher(CALLBACK)


@pytest.fixture
def deny() -> Finisher:
    return Finisher(DENIED)


@pytest.fixture
def flow(interaction: Interaction) -> Flow:
    return interaction.start("shop", dict(AUTHORIZATION), BROWSER)


@pytest.fixture
def code_flow(interaction: Interaction, flow: Flow) -> Flow:
    """A flow that has reached the code step for Jenny."""
    result = interaction.submit_email(post(flow), JENNY)
    assert result.problem is None
    assert result.flow.step == FlowStep.CODE
    return result.flow


def post(flow: Flow, browser_id: str | None = BROWSER, ip: str = CLIENT_IP) -> FlowRequest:
    """A form post from the page: the flow's CSRF token and the browser's cookie."""
    return FlowRequest(flow.id, browser_id, csrf_token=flow.csrf_token, client_ip=ip)


def get(flow: Flow, browser_id: str | None = BROWSER) -> FlowRequest:
    """A page view: no form, so no CSRF token."""
    return FlowRequest(flow.id, browser_id, client_ip=CLIENT_IP)


def step_result(outcome: StepResult | Completion) -> StepResult:
    assert isinstance(outcome, StepResult), outcome
    return outcome


def completion(outcome: StepResult | Completion) -> Completion:
    assert isinstance(outcome, Completion), outcome
    return outcome


def stored_flow(store: Store, flow: Flow) -> Flow:
    saved = store.flows.load(flow.id)
    assert saved is not None
    return saved


def json_leaves(value: Any) -> list[str]:
    """Every scalar in a JSON document, as text."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in json_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in json_leaves(item)]
    return [str(value)]


def every_value(redis_client: redis.Redis) -> list[str]:
    return [str(redis_client.get(key)) for key in redis_client.scan_iter("*")]


def start_and_submit(
    interaction: Interaction,
    email: str,
    client_id: str = "shop",
    ip: str = CLIENT_IP,
) -> StepResult:
    flow = interaction.start(client_id, dict(AUTHORIZATION, client_id=client_id), BROWSER)
    return interaction.submit_email(post(flow, ip=ip), email)


def wrong_codes(interaction: Interaction, flow: Flow, count: int, code: str) -> list[StepResult]:
    return [
        step_result(interaction.submit_code(post(flow), wrong_code_for(code), Finisher("x")))
        for _ in range(count)
    ]


# The calls that take a form post, as (name, call) for parametrized tests.
POST_CALLS: dict[str, Callable[[Interaction, FlowRequest], object]] = {
    "submit_email": lambda i, r: i.submit_email(r, JENNY),
    "resend_code": lambda i, r: i.resend_code(r),
    "submit_code": lambda i, r: i.submit_code(r, "000000", Finisher(CALLBACK)),
    "use_another_email": lambda i, r: i.use_another_email(r),
    "cancel": lambda i, r: i.cancel(r, Finisher(DENIED)),
}
ALL_CALLS: dict[str, Callable[[Interaction, FlowRequest], object]] = {
    "view": lambda i, r: i.view(r),
    **POST_CALLS,
}


def assert_knows_the_site(error: FlowError) -> None:
    assert error.client_id == "shop"
    assert error.redirect_uri == REDIRECT_URI


# Starting and viewing


def test_start_saves_a_flow_bound_to_the_browser(
    flow: Flow, store: Store, redis_client: redis.Redis, clock: FixedClock
) -> None:
    assert flow.id.startswith("flow_")
    assert flow.step == FlowStep.EMAIL
    assert flow.client_id == "shop"
    assert flow.authorization == AUTHORIZATION
    assert flow.browser_digest == digest(BROWSER)
    assert flow.created_at == clock.now()
    assert flow.expires_at == clock.now() + Lifetimes().flow
    assert flow.sms_sent == 0
    assert stored_flow(store, flow) == flow
    assert BROWSER not in redis_client.get(keyspace.flow(flow.id))


def test_each_start_makes_a_new_flow_with_its_own_csrf_token(interaction: Interaction) -> None:
    first = interaction.start("shop", dict(AUTHORIZATION), BROWSER)
    second = interaction.start("shop", dict(AUTHORIZATION), BROWSER)

    assert first.id != second.id
    assert first.csrf_token != second.csrf_token


def test_view_with_the_same_browser_returns_the_flow_without_a_csrf_token(
    interaction: Interaction, flow: Flow
) -> None:
    assert interaction.view(get(flow)) == flow


@pytest.mark.parametrize("call", list(ALL_CALLS))
@pytest.mark.parametrize("browser_id", [OTHER_BROWSER, "", None])
def test_another_browser_is_refused_and_told_which_site_it_came_from(
    interaction: Interaction, code_flow: Flow, store: Store, browser_id: str | None, call: str
) -> None:
    request = FlowRequest(code_flow.id, browser_id, code_flow.csrf_token, CLIENT_IP)

    with pytest.raises(FlowBrowserMismatchError) as raised:
        ALL_CALLS[call](interaction, request)

    assert_knows_the_site(raised.value)
    assert stored_flow(store, code_flow) == code_flow


@pytest.mark.parametrize("call", list(POST_CALLS))
@pytest.mark.parametrize("csrf_token", [None, "", "not-the-token"])
def test_a_form_post_needs_the_flows_csrf_token(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    messages: list[str],
    csrf_token: str | None,
    call: str,
) -> None:
    request = FlowRequest(code_flow.id, BROWSER, csrf_token, CLIENT_IP)

    with pytest.raises(FlowFormExpiredError) as raised:
        POST_CALLS[call](interaction, request)

    assert_knows_the_site(raised.value)
    assert stored_flow(store, code_flow) == code_flow
    assert len(messages) == 1


def test_the_csrf_token_of_another_flow_is_refused(
    interaction: Interaction, flow: Flow, messages: list[str]
) -> None:
    other = interaction.start("shop", dict(AUTHORIZATION), BROWSER)
    request = FlowRequest(flow.id, BROWSER, other.csrf_token, CLIENT_IP)

    with pytest.raises(FlowFormExpiredError):
        interaction.submit_email(request, JENNY)
    assert messages == []


@pytest.mark.parametrize("call", list(ALL_CALLS))
def test_an_unknown_flow_is_not_found(interaction: Interaction, call: str) -> None:
    request = FlowRequest("flow_does_not_exist", BROWSER, "token", CLIENT_IP)

    with pytest.raises(FlowNotFoundError) as raised:
        ALL_CALLS[call](interaction, request)

    assert raised.value.client_id is None
    assert raised.value.redirect_uri is None


@pytest.mark.parametrize("call", list(ALL_CALLS))
def test_an_expired_flow_says_so_and_which_site_it_came_from(
    interaction: Interaction,
    code_flow: Flow,
    clock: FixedClock,
    lifetimes: Lifetimes,
    messages: list[str],
    call: str,
) -> None:
    clock.advance(lifetimes.flow - 1)
    assert interaction.view(get(code_flow)) == code_flow

    clock.advance(1)

    with pytest.raises(FlowExpiredError) as raised:
        ALL_CALLS[call](interaction, post(code_flow))
    assert_knows_the_site(raised.value)
    assert len(messages) == 1


def test_an_expired_flow_lingers_in_redis_for_the_afterlife_only(
    interaction: Interaction,
    flow: Flow,
    store: Store,
    redis_client: redis.Redis,
    clock: FixedClock,
    lifetimes: Lifetimes,
) -> None:
    clock.advance(lifetimes.flow + 60)

    with pytest.raises(FlowExpiredError):
        interaction.view(get(flow))
    assert store.flows.load(flow.id) == flow
    ttl = redis_client.ttl(keyspace.flow(flow.id))
    assert FLOW_AFTERLIFE < ttl <= lifetimes.flow + FLOW_AFTERLIFE


def test_the_flow_lifetime_comes_from_the_lifetimes_given(
    make_interaction: Callable[..., Interaction], clock: FixedClock
) -> None:
    short = make_interaction(lifetimes_=Lifetimes(flow=30))
    flow = short.start("shop", dict(AUTHORIZATION), BROWSER)

    clock.advance(30)

    with pytest.raises(FlowExpiredError):
        short.view(get(flow))


# Email step


@pytest.mark.parametrize("email", ["", "   ", "jenny", "jenny@example", "jen ny@example.com"])
def test_an_invalid_email_is_a_problem_and_stays_on_the_email_step(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str], email: str
) -> None:
    result = interaction.submit_email(post(flow), email)

    assert result.problem is Problem.INVALID_EMAIL
    assert result.flow.step == FlowStep.EMAIL
    # What the page shows is what is stored, so the page can be reloaded as a plain GET.
    assert stored_flow(store, flow) == result.flow
    assert messages == []


@pytest.mark.parametrize(
    "email", ["jenny\x00@example.com", "jenny@exa\x07mple.com", "jenny@example.com\x7f\x85"]
)
def test_control_characters_in_an_email_are_refused_before_link_is_asked(
    interaction: Interaction,
    flow: Flow,
    store: Store,
    link: ScriptedLink,
    messages: list[str],
    email: str,
) -> None:
    # Were Link asked, the problem would be this failure instead.
    link.failures["lookup"] = LinkErrorKind.UNAVAILABLE

    result = interaction.submit_email(post(flow), email)

    assert result.problem is Problem.EMAIL_CONTROL_CHARACTERS
    assert result.flow.step == FlowStep.EMAIL
    # The form comes back with the address minus what was refused; nothing reached Link.
    assert result.flow.email == "jenny@example.com"
    assert stored_flow(store, flow) == result.flow
    assert messages == []


def test_an_overlong_email_is_invalid(interaction: Interaction, flow: Flow) -> None:
    email = "a" * 250 + "@example.com"

    assert interaction.submit_email(post(flow), email).problem is Problem.INVALID_EMAIL


def test_an_unknown_email_leads_to_the_not_on_link_step(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str]
) -> None:
    result = interaction.submit_email(post(flow), "Nobody@Example.com")

    assert result.problem is None
    assert result.flow.step == FlowStep.NOT_ON_LINK
    assert result.flow.email == "nobody@example.com"
    assert result.flow.link_client_secret is None
    assert stored_flow(store, flow) == result.flow
    assert messages == []


def test_from_not_on_link_another_email_can_be_tried(interaction: Interaction, flow: Flow) -> None:
    interaction.submit_email(post(flow), "nobody@example.com")

    result = interaction.submit_email(post(flow), JENNY)

    assert result.problem is None
    assert result.flow.step == FlowStep.CODE


def test_a_known_email_leads_to_the_code_step_with_a_redacted_phone(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str], clock: FixedClock
) -> None:
    result = interaction.submit_email(post(flow), "  JENNY@example.com ")

    assert result.problem is None
    assert result.flow.step == FlowStep.CODE
    assert result.flow.email == JENNY
    assert result.flow.redacted_phone == "+1********23"
    assert result.flow.code_attempts == 0
    assert result.flow.sms_sent == 1
    assert result.flow.sms_sent_at == clock.now()
    assert len(messages) == 1
    saved = stored_flow(store, flow)
    assert saved == result.flow
    assert saved.link_client_secret is not None
    assert saved.link_client_secret.startswith("sandbox_cs_")


def test_the_sms_code_is_stored_nowhere_in_redis(
    interaction: Interaction, code_flow: Flow, redis_client: redis.Redis, messages: list[str]
) -> None:
    wrong_codes(interaction, code_flow, 1, announced_code(messages))
    code = announced_code(messages)

    keys = list(redis_client.scan_iter("*"))
    assert keyspace.flow(code_flow.id) in keys
    # The sandbox, standing in for Link, keeps the code's digest sealed in its handle (as
    # Link keeps the code), and what checking it did in its own state: never the code.
    sandbox = [key for key in keys if keyspace.kind_of(key) == "sandbox_session"]
    assert len(sandbox) == 1
    assert code not in str(redis_client.get(sandbox[0]))
    for key in set(keys) - set(sandbox):
        assert code not in key.split(":")
        value = redis_client.get(key)
        assert digest(code) not in value
        try:
            leaves = json_leaves(json.loads(value))
        except json.JSONDecodeError:
            leaves = [value]
        assert code not in leaves


def test_a_double_submit_of_the_same_email_sends_no_second_sms(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    again = interaction.submit_email(post(code_flow), " Jenny@Example.com")

    assert again.problem is None
    assert again.flow == code_flow
    assert stored_flow(store, code_flow) == code_flow
    assert len(messages) == 1


def test_a_new_email_during_the_code_step_starts_over_once_the_cooldown_is_over(
    interaction: Interaction, code_flow: Flow, messages: list[str], clock: FixedClock
) -> None:
    clock.advance(Limits().resend_cooldown)

    result = interaction.submit_email(post(code_flow), SAM)

    assert result.problem is None
    assert result.flow.step == FlowStep.CODE
    assert result.flow.email == SAM
    assert result.flow.link_client_secret != code_flow.link_client_secret
    assert result.flow.sms_sent == 2
    assert len(messages) == 2


def test_a_new_email_during_the_code_step_shares_the_flows_resend_cooldown(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    result = interaction.submit_email(post(code_flow), SAM)

    assert result.problem is Problem.RESEND_TOO_SOON
    assert result.detail == Limits().resend_cooldown
    # Back at the email step with the new email; the old email's Link session is dropped.
    assert stored_flow(store, code_flow) == result.flow
    assert (result.flow.step, result.flow.email) == (FlowStep.EMAIL, SAM)
    assert result.flow.link_client_secret is None
    assert len(messages) == 1


@pytest.mark.parametrize("failure", ["cooldown", "link_unavailable"])
def test_a_new_email_refused_on_the_code_step_is_not_shown_as_the_code_step_for_it(
    interaction: Interaction, code_flow: Flow, store: Store, link: ScriptedLink, failure: str
) -> None:
    if failure == "link_unavailable":
        link.failures["lookup"] = LinkErrorKind.UNAVAILABLE

    result = interaction.submit_email(post(code_flow), SAM)

    assert result.problem is not None
    # The page renders the stored flow: never "signing in as sam" on a code step whose
    # Link session would sign Jenny in.
    assert stored_flow(store, code_flow) == result.flow
    assert result.flow.step == FlowStep.EMAIL
    assert result.flow.link_client_secret is None


# Code step


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", "one23456"])
def test_a_malformed_code_is_a_format_problem_without_using_an_attempt(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher, code: str
) -> None:
    result = step_result(interaction.submit_code(post(code_flow), code, finish))

    assert result.problem is Problem.INVALID_CODE_FORMAT
    assert result.flow == code_flow
    assert stored_flow(store, code_flow).code_attempts == 0
    assert finish.calls == []


def test_a_wrong_code_tells_how_many_attempts_are_left(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    results = wrong_codes(interaction, code_flow, 4, announced_code(messages))

    assert [r.problem for r in results] == [Problem.WRONG_CODE] * 4
    assert [r.detail for r in results] == [4, 3, 2, 1]
    assert [r.flow.code_attempts for r in results] == [1, 2, 3, 4]
    assert results[-1].flow.step == FlowStep.CODE
    assert stored_flow(store, code_flow).code_attempts == 4


def test_the_fifth_wrong_code_locks_the_flow(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    results = wrong_codes(interaction, code_flow, 5, announced_code(messages))

    assert [r.problem for r in results] == [Problem.WRONG_CODE] * 4 + [Problem.TOO_MANY_ATTEMPTS]
    locked = results[-1].flow
    assert locked.step == FlowStep.LOCKED
    assert locked.link_client_secret is None
    assert locked.code_attempts == 5
    assert stored_flow(store, code_flow) == locked


def test_the_number_of_code_attempts_comes_from_the_limits(
    make_interaction: Callable[..., Interaction], messages: list[str]
) -> None:
    interaction = make_interaction(Limits(code_attempts=2))
    flow = start_and_submit(interaction, JENNY).flow

    results = wrong_codes(interaction, flow, 2, announced_code(messages))

    assert [(r.problem, r.detail) for r in results] == [
        (Problem.WRONG_CODE, 1),
        (Problem.TOO_MANY_ATTEMPTS, None),
    ]
    assert results[-1].flow.step == FlowStep.LOCKED


def test_a_locked_flow_only_lets_the_user_go_back_to_the_site(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    messages: list[str],
    finish: Finisher,
    deny: Finisher,
    clock: FixedClock,
) -> None:
    code = announced_code(messages)
    locked = wrong_codes(interaction, code_flow, 5, code)[-1].flow
    clock.advance(Limits().resend_cooldown)

    refused_steps: list[Callable[[], object]] = [
        lambda: interaction.submit_email(post(locked), SAM),
        lambda: interaction.submit_email(post(locked), JENNY),
        lambda: interaction.submit_code(post(locked), code, finish),
        lambda: interaction.submit_code(post(locked), "000000", finish),
        lambda: interaction.resend_code(post(locked)),
        lambda: interaction.use_another_email(post(locked)),
    ]
    for step in refused_steps:
        with pytest.raises(FlowStepError) as refused:
            step()
        assert refused.value.flow_id == locked.id
    assert interaction.view(get(locked)) == locked
    assert stored_flow(store, code_flow) == locked
    assert finish.calls == []
    assert len(messages) == 1

    assert interaction.cancel(post(locked), deny) == DENIED
    assert len(deny.calls) == 1
    assert store.flows.load(code_flow.id) is None


def test_allow_on_a_flow_at_the_code_step_is_refused_and_changes_nothing(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher
) -> None:
    with pytest.raises(FlowStepError) as refused:
        interaction.allow(post(code_flow), finish)

    assert refused.value.flow_id == code_flow.id
    assert stored_flow(store, code_flow) == code_flow
    assert finish.calls == []


def test_the_announced_code_completes_the_flow(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    clock: FixedClock,
    messages: list[str],
    finish: Finisher,
) -> None:
    clock.advance(42)

    done = completion(interaction.submit_code(post(code_flow), announced_code(messages), finish))

    identity = Identity(email=JENNY, name="Jenny Rosen", auth_time=clock.now())
    assert done == Completion(flow=code_flow, identity=identity, redirect_to=CALLBACK)
    assert done.flow.authorization == AUTHORIZATION
    assert done.identity.amr == ("otp", "sms")
    assert finish.calls == [(code_flow, identity)]
    assert store.flows.load(code_flow.id) is None


def test_the_identity_email_is_lower_cased(
    interaction: Interaction, flow: Flow, messages: list[str], finish: Finisher
) -> None:
    interaction.submit_email(post(flow), "SAM@EXAMPLE.COM")

    done = completion(interaction.submit_code(post(flow), announced_code(messages), finish))

    assert done.identity.email == SAM
    assert done.identity.name is None
    assert finish.calls[0][1] == done.identity


def test_spaces_in_the_typed_code_are_ignored(
    interaction: Interaction, code_flow: Flow, messages: list[str], finish: Finisher
) -> None:
    code = announced_code(messages)

    outcome = interaction.submit_code(post(code_flow), f" {code[:3]} {code[3:]}\n", finish)

    assert isinstance(outcome, Completion)


def test_a_right_code_after_wrong_ones_completes_the_flow(
    interaction: Interaction, code_flow: Flow, messages: list[str], finish: Finisher
) -> None:
    code = announced_code(messages)
    wrong_codes(interaction, code_flow, 4, code)

    assert isinstance(interaction.submit_code(post(code_flow), code, finish), Completion)


def test_every_sign_in_log_line_comes_from_the_one_interaction_logger(
    interaction: Interaction,
    flow: Flow,
    messages: list[str],
    finish: Finisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The JSON log's "logger" field is how log queries find the sign-in: the interaction
    package's modules (the lock, the checks at the door, the limits) log under one name."""
    with caplog.at_level(logging.INFO, logger="oidc_link"):
        with pytest.raises(FlowBrowserMismatchError):
            interaction.submit_email(post(flow, browser_id=OTHER_BROWSER), JENNY)
        interaction.submit_email(post(flow), "not-an-email")
        interaction.submit_email(post(flow), JENNY)
        completion(interaction.submit_code(post(flow), announced_code(messages), finish))

    sign_in = [
        (record.name, record.event, getattr(record, "reason", None))
        for record in caplog.records
        if getattr(record, "event", "").startswith(("sign_in.", "sms."))
    ]
    assert sign_in == [
        ("oidc_link.interaction", "sign_in.failed", "wrong_browser"),
        ("oidc_link.interaction", "sign_in.failed", "invalid_email"),
        ("oidc_link.interaction", "sms.sent", None),
        ("oidc_link.interaction", "sign_in.completed", None),
    ]


def test_a_code_step_action_on_an_email_step_flow_changes_nothing(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str], finish: Finisher
) -> None:
    with pytest.raises(FlowStepError) as refused:
        interaction.submit_code(post(flow), "000000", finish)
    assert refused.value.flow_id == flow.id
    with pytest.raises(FlowStepError):
        interaction.resend_code(post(flow))
    assert stored_flow(store, flow) == flow
    assert finish.calls == []
    assert messages == []


def test_a_code_that_expired_at_link_stays_on_the_code_step(
    make_interaction: Callable[..., Interaction],
    store: Store,
    clock: FixedClock,
    messages: list[str],
    finish: Finisher,
) -> None:
    # The sandbox's codes live as long as a default flow: outlive them to see them expire.
    interaction = make_interaction(lifetimes_=Lifetimes(flow=CODE_LIFETIME + 60))
    code_flow = start_and_submit(interaction, JENNY).flow
    clock.advance(CODE_LIFETIME)

    result = step_result(interaction.submit_code(post(code_flow), announced_code(messages), finish))

    assert result.problem is Problem.CODE_EXPIRED
    assert result.flow.step == FlowStep.CODE
    assert stored_flow(store, code_flow) == code_flow
    assert finish.calls == []


# Magic codes


def test_magic_code_000000_completes_the_flow(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher
) -> None:
    done = completion(interaction.submit_code(post(code_flow), "000000", finish))

    assert done.identity.email == JENNY
    assert store.flows.load(code_flow.id) is None


def test_magic_code_000001_counts_as_a_wrong_code(
    interaction: Interaction, code_flow: Flow, finish: Finisher
) -> None:
    result = step_result(interaction.submit_code(post(code_flow), "000001", finish))

    assert result.problem is Problem.WRONG_CODE
    assert result.detail == 4
    assert result.flow.code_attempts == 1


def test_magic_code_000002_is_expired_and_stays_on_the_code_step(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher
) -> None:
    result = step_result(interaction.submit_code(post(code_flow), "000002", finish))

    assert result.problem is Problem.CODE_EXPIRED
    assert result.flow.step == FlowStep.CODE
    assert stored_flow(store, code_flow) == code_flow


def test_magic_code_000003_is_links_too_many_attempts_and_locks_the_flow(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher
) -> None:
    result = step_result(interaction.submit_code(post(code_flow), "000003", finish))

    assert result.problem is Problem.TOO_MANY_ATTEMPTS
    assert result.flow.step == FlowStep.LOCKED
    assert result.flow.link_client_secret is None
    assert stored_flow(store, code_flow) == result.flow
    assert finish.calls == []


# Resend


def test_a_resend_within_the_cooldown_says_how_long_to_wait(
    interaction: Interaction, code_flow: Flow, store: Store, clock: FixedClock, messages: list[str]
) -> None:
    clock.advance(10)

    result = interaction.resend_code(post(code_flow))

    assert result.problem is Problem.RESEND_TOO_SOON
    assert result.detail == 20
    assert stored_flow(store, code_flow) == code_flow
    assert len(messages) == 1

    clock.advance(19)
    assert interaction.resend_code(post(code_flow)).detail == 1


def test_a_resend_after_the_cooldown_sends_a_new_code_that_works(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    clock: FixedClock,
    messages: list[str],
    finish: Finisher,
) -> None:
    wrong = step_result(interaction.submit_code(post(code_flow), "000001", finish)).flow
    clock.advance(Limits().resend_cooldown)

    resent = interaction.resend_code(post(code_flow))

    assert resent.problem is None
    assert len(messages) == 2
    assert resent.flow.step == FlowStep.CODE
    # Wrong codes count per flow, not per code: a resend does not buy more guesses.
    assert resent.flow.code_attempts == wrong.code_attempts == 1
    assert resent.flow.sms_sent == 2
    assert resent.flow.sms_sent_at == clock.now()
    assert resent.flow.redacted_phone == "+1********23"
    assert stored_flow(store, code_flow) == resent.flow
    done = interaction.submit_code(post(code_flow), announced_code(messages), finish)
    assert isinstance(done, Completion)


def test_after_three_resends_no_more_codes_are_sent(
    interaction: Interaction, code_flow: Flow, store: Store, clock: FixedClock, messages: list[str]
) -> None:
    problems = []
    for _ in range(Limits().resends + 1):
        clock.advance(Limits().resend_cooldown)
        problems.append(interaction.resend_code(post(code_flow)).problem)

    assert problems == [None, None, None, Problem.NO_MORE_RESENDS]
    assert len(messages) == 4
    assert stored_flow(store, code_flow).sms_sent == 4


# Another email, cancel


def test_use_another_email_returns_to_the_email_step(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher
) -> None:
    back = interaction.use_another_email(post(code_flow))

    assert back.step == FlowStep.EMAIL
    assert back.email == JENNY
    assert back.link_client_secret is None
    assert back.redacted_phone is None
    assert stored_flow(store, code_flow) == back
    with pytest.raises(FlowStepError):
        interaction.submit_code(post(code_flow), "000000", finish)
    assert stored_flow(store, code_flow) == back
    assert finish.calls == []


def test_cancel_returns_the_denial_and_ends_the_flow(
    interaction: Interaction, code_flow: Flow, store: Store, deny: Finisher
) -> None:
    assert interaction.cancel(post(code_flow), deny) == DENIED

    assert deny.calls == [(code_flow,)]
    assert store.flows.load(code_flow.id) is None
    with pytest.raises(FlowFinishedError) as viewed:
        interaction.view(get(code_flow))
    assert viewed.value.resume_at is None
    assert_knows_the_site(viewed.value)
    # A double click on "Cancel" lands where the first one went.
    with pytest.raises(FlowFinishedError) as again:
        interaction.cancel(post(code_flow), deny)
    assert again.value.resume_at == DENIED
    assert len(deny.calls) == 1


# After completion


def test_after_completion_a_view_is_told_the_flow_has_finished(
    interaction: Interaction, code_flow: Flow, store: Store, finish: Finisher
) -> None:
    completion(interaction.submit_code(post(code_flow), "000000", finish))

    assert store.flows.load(code_flow.id) is None
    with pytest.raises(FlowFinishedError) as raised:
        interaction.view(get(code_flow))
    assert raised.value.resume_at is None
    assert_knows_the_site(raised.value)


@pytest.mark.parametrize("call", list(POST_CALLS))
def test_a_double_submit_from_the_same_browser_lands_where_the_first_went(
    interaction: Interaction,
    code_flow: Flow,
    finish: Finisher,
    messages: list[str],
    clock: FixedClock,
    call: str,
) -> None:
    completion(interaction.submit_code(post(code_flow), "000000", finish))
    clock.advance(DOUBLE_SUBMIT_SECONDS)

    with pytest.raises(FlowFinishedError) as raised:
        POST_CALLS[call](interaction, post(code_flow))

    assert raised.value.resume_at == CALLBACK
    assert_knows_the_site(raised.value)
    assert len(finish.calls) == 1
    assert len(messages) == 1


def test_a_double_submit_from_another_browser_does_not_learn_the_redirect(
    interaction: Interaction, code_flow: Flow, finish: Finisher
) -> None:
    completion(interaction.submit_code(post(code_flow), "000000", finish))

    with pytest.raises(FlowFinishedError) as raised:
        interaction.submit_code(post(code_flow, OTHER_BROWSER), "000000", finish)

    assert raised.value.resume_at is None
    assert len(finish.calls) == 1


def test_a_late_submit_is_not_sent_to_the_redirect_again(
    interaction: Interaction, code_flow: Flow, finish: Finisher, clock: FixedClock
) -> None:
    completion(interaction.submit_code(post(code_flow), "000000", finish))
    clock.advance(DOUBLE_SUBMIT_SECONDS + 1)

    with pytest.raises(FlowFinishedError) as raised:
        interaction.submit_code(post(code_flow), "000000", finish)

    assert raised.value.resume_at is None
    assert_knows_the_site(raised.value)
    assert len(finish.calls) == 1


def test_the_finished_flow_never_holds_the_redirect_in_clear(
    interaction: Interaction,
    code_flow: Flow,
    redis_client: redis.Redis,
    finish: Finisher,
) -> None:
    completion(interaction.submit_code(post(code_flow), "000000", finish))

    keys = list(redis_client.scan_iter("*"))
    assert keyspace.finished_flow(code_flow.id) in keys
    assert keyspace.flow(code_flow.id) not in keys
    assert keyspace.flow_lock(code_flow.id) not in keys
    for value in every_value(redis_client):
        assert CALLBACK not in value
        assert RP_CODE not in value
    assert 0 < redis_client.ttl(keyspace.finished_flow(code_flow.id)) <= FLOW_AFTERLIFE


# Link failures


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (LinkErrorKind.UNAVAILABLE, Problem.LINK_UNAVAILABLE),
        (LinkErrorKind.RATE_LIMITED, Problem.LINK_RATE_LIMITED),
        (LinkErrorKind.BAD_RESPONSE, Problem.LINK_UNAVAILABLE),
    ],
)
@pytest.mark.parametrize("call", ["lookup", "start_verification"])
def test_a_link_failure_on_the_email_step_leaves_the_flow_as_it_was(
    interaction: Interaction,
    flow: Flow,
    store: Store,
    link: ScriptedLink,
    messages: list[str],
    call: str,
    kind: LinkErrorKind,
    problem: Problem,
) -> None:
    link.failures[call] = kind

    result = interaction.submit_email(post(flow), JENNY)

    assert result.problem is problem
    assert result.flow.email == JENNY  # shown back to the user
    assert result.flow.step == FlowStep.EMAIL
    assert result.flow.link_client_secret is None  # nothing half done
    assert stored_flow(store, flow) == result.flow
    assert messages == []

    del link.failures[call]
    assert interaction.submit_email(post(flow), JENNY).flow.step == FlowStep.CODE


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (LinkErrorKind.UNAVAILABLE, Problem.LINK_UNAVAILABLE),
        (LinkErrorKind.RATE_LIMITED, Problem.LINK_RATE_LIMITED),
    ],
)
def test_a_link_failure_on_the_code_step_leaves_the_flow_as_it_was(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    link: ScriptedLink,
    messages: list[str],
    clock: FixedClock,
    finish: Finisher,
    kind: LinkErrorKind,
    problem: Problem,
) -> None:
    link.failures["authenticate"] = kind
    code = announced_code(messages)

    checked = step_result(interaction.submit_code(post(code_flow), code, finish))
    clock.advance(Limits().resend_cooldown)
    link.failures["start_verification"] = kind
    resent = interaction.resend_code(post(code_flow))

    assert (checked.problem, resent.problem) == (problem, problem)
    assert checked.flow == resent.flow == code_flow
    assert stored_flow(store, code_flow) == code_flow
    assert finish.calls == []
    link.failures.clear()
    assert isinstance(interaction.submit_code(post(code_flow), code, finish), Completion)


def test_a_link_answer_for_another_email_returns_to_the_email_step(
    interaction: Interaction, code_flow: Flow, store: Store, link: ScriptedLink, finish: Finisher
) -> None:
    link.confirmed_email = "mallory@example.com"

    result = step_result(interaction.submit_code(post(code_flow), "000000", finish))

    assert result.problem is Problem.LINK_MISMATCH
    assert result.flow.step == FlowStep.EMAIL
    assert result.flow.link_client_secret is None
    assert stored_flow(store, code_flow) == result.flow
    assert finish.calls == []


def test_a_link_answer_differing_only_in_case_completes(
    interaction: Interaction, code_flow: Flow, link: ScriptedLink, finish: Finisher
) -> None:
    link.confirmed_email = "Jenny@Example.COM "

    done = completion(interaction.submit_code(post(code_flow), "000000", finish))

    assert done.identity.email == JENNY


# Abuse limits, counted in Redis


def test_lookups_are_limited_per_client_ip(
    make_interaction: Callable[..., Interaction],
    store: Store,
    clock: FixedClock,
    link: ScriptedLink,
) -> None:
    interaction = make_interaction(Limits(lookups_per_ip=2, lookups_per_ip_window=60))
    flow = interaction.start("shop", dict(AUTHORIZATION), BROWSER)
    assert interaction.submit_email(post(flow), "one@example.com").problem is None
    assert interaction.submit_email(post(flow), "two@example.com").problem is None
    before = stored_flow(store, flow)

    refused = interaction.submit_email(post(flow), "three@example.com")

    assert refused.problem is Problem.TOO_MANY_LOOKUPS
    assert stored_flow(store, flow) == refused.flow
    assert refused.flow == before.advance(email="three@example.com", step=FlowStep.EMAIL)
    # Another address is counted on its own, in this flow or another.
    assert interaction.submit_email(post(flow, ip=OTHER_IP), "three@example.com").problem is None
    assert start_and_submit(interaction, "four@example.com", ip=OTHER_IP).problem is None
    assert start_and_submit(interaction, "four@example.com").problem is Problem.TOO_MANY_LOOKUPS

    clock.advance(60)
    assert interaction.submit_email(post(flow), "five@example.com").problem is None


def test_sms_are_limited_per_email_across_flows(
    make_interaction: Callable[..., Interaction],
    store: Store,
    clock: FixedClock,
    messages: list[str],
) -> None:
    interaction = make_interaction(Limits(sms_per_email=2, sms_per_email_window=3600))
    assert start_and_submit(interaction, JENNY).problem is None
    assert start_and_submit(interaction, JENNY).problem is None

    refused = start_and_submit(interaction, JENNY.upper())

    assert refused.problem is Problem.TOO_MANY_SMS
    assert stored_flow(store, refused.flow).step == FlowStep.EMAIL
    assert len(messages) == 2
    assert start_and_submit(interaction, SAM).problem is None

    clock.advance(3600)
    assert start_and_submit(interaction, JENNY).problem is None
    assert len(messages) == 4


def test_resends_count_towards_the_sms_per_email(
    make_interaction: Callable[..., Interaction], clock: FixedClock, messages: list[str]
) -> None:
    interaction = make_interaction(Limits(sms_per_email=2))
    flow = start_and_submit(interaction, JENNY).flow
    clock.advance(30)
    assert interaction.resend_code(post(flow)).problem is None
    clock.advance(30)

    assert interaction.resend_code(post(flow)).problem is Problem.TOO_MANY_SMS
    assert len(messages) == 2


def test_phones_that_redact_alike_do_not_share_an_allowance(
    make_interaction: Callable[..., Interaction], messages: list[str]
) -> None:
    interaction = make_interaction(Limits(sms_per_email=1, sms_per_email_ceiling=1))
    assert start_and_submit(interaction, JENNY).problem is None

    # Jen's phone is another number, but Link shows it redacted just like Jenny's.
    assert start_and_submit(interaction, JEN).problem is None
    assert len(messages) == 2


def test_sms_per_email_are_counted_per_client_network(
    make_interaction: Callable[..., Interaction], clock: FixedClock, messages: list[str]
) -> None:
    interaction = make_interaction(Limits(sms_per_email=2, sms_per_email_window=3600))
    assert start_and_submit(interaction, JENNY).problem is None
    assert start_and_submit(interaction, JENNY).problem is None

    assert start_and_submit(interaction, JENNY).problem is Problem.TOO_MANY_SMS
    assert start_and_submit(interaction, JENNY, ip=OTHER_IP).problem is None
    assert len(messages) == 3


def test_an_ipv6_network_counts_as_one_per_64_and_an_ipv4_mapped_address_as_ipv4(
    make_interaction: Callable[..., Interaction], messages: list[str]
) -> None:
    interaction = make_interaction(Limits(sms_per_email=1))
    assert start_and_submit(interaction, JENNY, ip="2001:db8:1:2::10").problem is None
    # Another address of the same /64: the same line, the same allowance.
    assert (
        start_and_submit(interaction, JENNY, ip="2001:db8:1:2:aaaa::1").problem
        is Problem.TOO_MANY_SMS
    )
    assert start_and_submit(interaction, JENNY, ip="2001:db8:1:3::10").problem is None
    assert start_and_submit(interaction, JENNY, ip="::ffff:" + CLIENT_IP).problem is None
    assert start_and_submit(interaction, JENNY, ip=CLIENT_IP).problem is Problem.TOO_MANY_SMS
    assert len(messages) == 3


def test_the_ceiling_per_email_counts_every_network_and_forgives_after_its_window(
    make_interaction: Callable[..., Interaction], clock: FixedClock, messages: list[str]
) -> None:
    interaction = make_interaction(
        Limits(sms_per_email_ceiling=3, sms_per_email_ceiling_window=300)
    )
    clock.advance(300 - clock.now() % 300)  # the start of a window
    for n in range(3):
        assert start_and_submit(interaction, JENNY, ip=f"198.51.100.{n}").problem is None

    assert start_and_submit(interaction, JENNY, ip=CLIENT_IP).problem is Problem.TOO_MANY_SMS
    assert start_and_submit(interaction, SAM, ip=CLIENT_IP).problem is None

    clock.advance(300)
    assert start_and_submit(interaction, JENNY, ip=CLIENT_IP).problem is None
    assert len(messages) == 5


def test_a_network_over_its_own_allowance_no_longer_fills_the_ceiling(
    make_interaction: Callable[..., Interaction], messages: list[str]
) -> None:
    interaction = make_interaction(Limits(sms_per_email=1, sms_per_email_ceiling=2))
    assert start_and_submit(interaction, JENNY, ip=OTHER_IP).problem is None
    for _ in range(5):
        assert start_and_submit(interaction, JENNY, ip=OTHER_IP).problem is Problem.TOO_MANY_SMS

    assert start_and_submit(interaction, JENNY, ip=CLIENT_IP).problem is None
    assert len(messages) == 2


def test_sms_limits_set_to_none_are_not_counted(
    make_interaction: Callable[..., Interaction], store: Store, messages: list[str]
) -> None:
    interaction = make_interaction(
        Limits(sms_per_email=None, sms_per_email_ceiling=None, client_daily_sms=None)
    )
    for _ in range(12):
        assert start_and_submit(interaction, JENNY).problem is None

    assert len(messages) == 12


def test_sms_are_limited_per_client_per_day(
    make_interaction: Callable[..., Interaction], clock: FixedClock, messages: list[str]
) -> None:
    interaction = make_interaction(Limits(client_daily_sms=2))
    assert start_and_submit(interaction, JENNY).problem is None
    assert start_and_submit(interaction, SAM).problem is None

    assert start_and_submit(interaction, JEN).problem is Problem.TOO_MANY_SMS
    assert start_and_submit(interaction, JEN, client_id="blog").problem is None
    assert len(messages) == 3

    clock.advance(86_400)
    assert start_and_submit(interaction, JEN).problem is None


# Counted ahead: the email step counts its lookup and its SMS in the lock's round trip, and
# takes back what it does not get to check, so the counters end as if counted there.


def rate_counts(redis_client: redis.Redis) -> dict[str, int]:
    """What the rate counters hold, summed by kind (lookup_ip, sms_email, ...)."""
    counts: dict[str, int] = {}
    for key in redis_client.scan_iter(keyspace.pattern("rate")):
        kind = key.removeprefix(keyspace.PREFIX).split(":")[1]
        counts[kind] = counts.get(kind, 0) + int(redis_client.get(key))
    return counts


NOTHING_COUNTED = {"lookup_ip": 0, "sms_email_network": 0, "sms_email": 0, "client_sms": 0}


def test_a_code_sent_counts_one_lookup_and_one_sms_against_each_limit(
    interaction: Interaction, flow: Flow, redis_client: redis.Redis
) -> None:
    assert interaction.submit_email(post(flow), JENNY).problem is None

    assert rate_counts(redis_client) == dict.fromkeys(NOTHING_COUNTED, 1)


def test_a_form_refused_at_the_door_leaves_every_counter_as_it_was(
    interaction: Interaction, flow: Flow, redis_client: redis.Redis, messages: list[str]
) -> None:
    forged = FlowRequest(flow.id, BROWSER, csrf_token=flow.csrf_token + "x", client_ip=CLIENT_IP)

    with pytest.raises(FlowFormExpiredError):
        interaction.submit_email(forged, JENNY)

    assert rate_counts(redis_client) in ({}, NOTHING_COUNTED)
    assert messages == []


def test_an_email_not_on_link_keeps_its_lookup_counted_and_takes_back_its_sms(
    interaction: Interaction, flow: Flow, redis_client: redis.Redis
) -> None:
    result = interaction.submit_email(post(flow), "nobody@example.com")

    assert result.flow.step == FlowStep.NOT_ON_LINK
    assert rate_counts(redis_client) == NOTHING_COUNTED | {"lookup_ip": 1}


def test_a_double_submit_of_the_email_counts_nothing_more(
    interaction: Interaction, code_flow: Flow, redis_client: redis.Redis
) -> None:
    counted = rate_counts(redis_client)

    assert interaction.submit_email(post(code_flow), JENNY).problem is None

    assert rate_counts(redis_client) == counted


def test_another_email_within_the_resend_cooldown_takes_back_its_sms_count(
    interaction: Interaction, code_flow: Flow, redis_client: redis.Redis, messages: list[str]
) -> None:
    refused = interaction.submit_email(post(code_flow), SAM)

    assert refused.problem is Problem.RESEND_TOO_SOON
    # Jenny's code was counted; Sam's lookup was, his SMS was not sent and is not counted.
    assert rate_counts(redis_client) == {
        "lookup_ip": 2,
        "sms_email_network": 1,
        "sms_email": 1,
        "client_sms": 1,
    }
    assert len(messages) == 1


def test_a_flow_whose_form_names_no_client_counts_its_sms_at_its_check(
    interaction: Interaction, flow: Flow, store: Store, redis_client: redis.Redis
) -> None:
    # A flow an older version started: its form token names no client.
    older = flow.advance(csrf_token="a-token-of-an-older-version")
    assert store.flows.save(older)

    assert interaction.submit_email(post(older), JENNY).problem is None

    assert rate_counts(redis_client) == dict.fromkeys(NOTHING_COUNTED, 1)


def test_a_form_token_names_its_flows_client_and_no_other(interaction: Interaction) -> None:
    shop = interaction.start("shop", dict(AUTHORIZATION), BROWSER)
    blog = interaction.start("blog", dict(AUTHORIZATION, client_id="blog"), BROWSER)

    assert client_named_by(shop.csrf_token) == "shop"
    assert client_named_by(blog.csrf_token) == "blog"
    assert shop.csrf_token.split(".")[0] != blog.csrf_token.split(".")[0]
    assert client_named_by("no-client-named") is None
    assert client_named_by("x.%%%") is None


def test_the_code_steps_form_token_names_the_email_and_the_email_form_left_open_still_passes(
    interaction: Interaction, flow: Flow, code_flow: Flow
) -> None:
    assert email_named_by(flow.csrf_token) is None
    assert email_named_by(code_flow.csrf_token) == JENNY
    assert client_named_by(code_flow.csrf_token) == "shop"
    assert code_flow.csrf_token.startswith(flow.csrf_token + ".")

    # Back to the email page as it was first shown: its token has no email, and passes.
    again = step_result(interaction.submit_email(post(flow), JENNY))
    assert again.problem is None and again.flow.step == FlowStep.CODE


def test_a_code_form_naming_another_email_passes_the_door_and_signs_in_the_flows_email(
    interaction: Interaction, code_flow: Flow, messages: list[str]
) -> None:
    named = door(code_flow.csrf_token) + ".bWFsbG9yeUBleGFtcGxlLmNvbQ"
    assert email_named_by(named) == "mallory@example.com"
    forged = FlowRequest(code_flow.id, BROWSER, csrf_token=named, client_ip=CLIENT_IP)
    asked: list[tuple[str, str]] = []

    def read_ahead(client_id: str, email: str) -> None:
        asked.append((client_id, email))  # what finish would read; it checks, not this step

    code = announced_code(messages)
    done = completion(interaction.submit_code(forged, code, Finisher("x"), read_ahead))

    assert asked == [("shop", "mallory@example.com")]
    assert done.identity.email == JENNY


# The per-flow lock


@pytest.mark.parametrize("call", list(POST_CALLS))
def test_a_call_waits_for_the_flow_lock_then_gives_up_as_busy(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    sleep: RecordingSleep,
    messages: list[str],
    call: str,
) -> None:
    token = store.flows.lock(code_flow.id, 60)
    assert token is not None

    with pytest.raises(FlowBusyError):
        POST_CALLS[call](interaction, post(code_flow))

    assert sleep.calls == [LOCK_POLL_SECONDS] * round(LOCK_WAIT_SECONDS / LOCK_POLL_SECONDS)
    assert stored_flow(store, code_flow) == code_flow
    assert len(messages) == 1
    # The other holder keeps its lock.
    assert store.flows.lock(code_flow.id, 60) is None
    store.flows.unlock(code_flow.id, token)
    POST_CALLS[call](interaction, post(code_flow))


def test_a_call_proceeds_once_the_lock_is_released_while_it_waits(
    interaction: Interaction,
    flow: Flow,
    store: Store,
    sleep: RecordingSleep,
    messages: list[str],
) -> None:
    token = store.flows.lock(flow.id, 60)
    assert token is not None
    sleep.after = (3, lambda: store.flows.unlock(flow.id, token))

    result = interaction.submit_email(post(flow), JENNY)

    assert result.problem is None
    assert result.flow.step == FlowStep.CODE
    assert sleep.calls == [LOCK_POLL_SECONDS] * 3
    assert len(messages) == 1


def test_the_lock_is_released_after_each_call_even_when_it_fails(
    interaction: Interaction,
    flow: Flow,
    store: Store,
    redis_client: redis.Redis,
    sleep: RecordingSleep,
) -> None:
    with pytest.raises(FlowFormExpiredError):
        interaction.submit_email(FlowRequest(flow.id, BROWSER, "wrong"), JENNY)
    interaction.submit_email(post(flow), JENNY)
    interaction.use_another_email(post(flow))

    assert sleep.calls == []
    assert redis_client.get(keyspace.flow_lock(flow.id)) is None


def test_only_the_sandbox_rehearses_limits_for_its_magic_emails(
    make_interaction: Callable[..., Interaction],
    store: Store,
    clock: FixedClock,
    link: ScriptedLink,
) -> None:
    live = make_interaction()
    rehearsing = Interaction(
        store, link, clock, Lifetimes(), Limits(), sleep=lambda _: None, rehearse_limits=True
    )

    assert start_and_submit(live, "too-many-sms@example.com").flow.step == FlowStep.NOT_ON_LINK
    assert start_and_submit(rehearsing, "too-many-sms@example.com").problem is Problem.TOO_MANY_SMS
    assert (
        start_and_submit(rehearsing, "too-many-lookups@example.net").problem
        is Problem.TOO_MANY_LOOKUPS
    )


# The sandbox's code check rides the code step's two round trips: the session's state read
# with the lock, for the session the form's token names, and written with the release.


def sandbox_states(redis_client: redis.Redis) -> list[str]:
    keys = redis_client.scan_iter(keyspace.pattern("sandbox_session"))
    return [str(redis_client.get(key)) for key in keys]


def test_the_code_form_names_the_sandbox_session_whose_wrong_codes_each_count(
    interaction: Interaction, code_flow: Flow, redis_client: redis.Redis, messages: list[str]
) -> None:
    assert session_named_by(code_flow.csrf_token) is not None
    assert email_named_by(code_flow.csrf_token) == JENNY

    results = wrong_codes(interaction, code_flow, 2, announced_code(messages))

    assert [result.problem for result in results] == [Problem.WRONG_CODE] * 2
    assert sandbox_states(redis_client) == ["1 2"]  # the first code sent, two wrong ones
    done = interaction.submit_code(post(code_flow), announced_code(messages), Finisher(CALLBACK))
    assert completion(done).redirect_to == CALLBACK
    assert sandbox_states(redis_client) == ["ended"]


def test_a_code_form_naming_another_session_checks_the_flow_s_own_session_alone(
    interaction: Interaction, code_flow: Flow, redis_client: redis.Redis, messages: list[str]
) -> None:
    forged = code_form_token(code_flow.csrf_token, JENNY, "made-up-session")
    request = FlowRequest(code_flow.id, BROWSER, csrf_token=forged, client_ip=CLIENT_IP)

    guess = wrong_code_for(announced_code(messages))
    wrong = interaction.submit_code(request, guess, Finisher("x"))

    assert step_result(wrong).problem is Problem.WRONG_CODE
    assert sandbox_states(redis_client) == ["1 1"]  # the flow's session only
    assert redis_client.get(keyspace.sandbox_session("made-up-session")) is None


def test_a_code_step_that_waited_for_the_lock_checks_against_what_was_checked_meanwhile(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    link: ScriptedLink,
    sleep: RecordingSleep,
    redis_client: redis.Redis,
    messages: list[str],
) -> None:
    code = announced_code(messages)
    secret = stored_flow(store, code_flow).link_client_secret
    assert secret is not None
    token = store.flows.lock(code_flow.id, 60)
    assert token is not None

    def another_check_then_unlock() -> None:
        # A check of the same session while this step waits (as one whose lock timed out).
        with pytest.raises(LinkError):
            link.real.authenticate(JENNY, secret, wrong_code_for(code))
        store.flows.unlock(code_flow.id, token)

    sleep.after = (2, another_check_then_unlock)

    wrong = interaction.submit_code(post(code_flow), wrong_code_for(code), Finisher("x"))

    assert step_result(wrong).problem is Problem.WRONG_CODE
    # The state read with the first try of the lock (none yet) was not used: two attempts.
    assert sandbox_states(redis_client) == ["1 2"]
