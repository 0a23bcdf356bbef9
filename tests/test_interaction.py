"""The hosted sign-in state machine with the sandbox Link client: browser binding, expiry,
email and code steps, attempt limits, magic codes, resend, another email, cancel, completion."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from oidc_link.clock import FixedClock
from oidc_link.config import Lifetimes, SandboxUser
from oidc_link.errors import FlowBrowserMismatchError, FlowNotFoundError, FlowStepError
from oidc_link.ids import digest
from oidc_link.interaction import (
    MAX_CODE_ATTEMPTS,
    Completion,
    Interaction,
    Problem,
    StepResult,
)
from oidc_link.link.sandbox import CODE_LIFETIME, SandboxLinkClient
from oidc_link.models import Flow, FlowStep, Identity
from oidc_link.store import PREFIX, Store
from tests.sandbox_console import announced_code, wrong_code_for

BROWSER = "browser-cookie-value-1"
OTHER_BROWSER = "browser-cookie-value-2"
AUTHORIZATION = {
    "response_type": "code",
    "client_id": "shop",
    "redirect_uri": "https://shop.example.com/cb",
    "scope": "openid email",
    "state": "af0ifjsldkj",
}
USERS = [
    SandboxUser(email="jenny@example.com", phone="+14155550123", name="Jenny Rosen"),
    SandboxUser(email="sam@example.com", phone="+447700900123"),
]


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture
def lifetimes() -> Lifetimes:
    return Lifetimes()


@pytest.fixture
def interaction(
    store: Store, clock: FixedClock, messages: list[str], lifetimes: Lifetimes
) -> Interaction:
    return Interaction(store, SandboxLinkClient(USERS, clock, messages.append), clock, lifetimes)


@pytest.fixture
def flow(interaction: Interaction) -> Flow:
    return interaction.start("shop", dict(AUTHORIZATION), BROWSER)


@pytest.fixture
def code_flow(interaction: Interaction, flow: Flow) -> Flow:
    """A flow that has reached the code step for Jenny."""
    result = interaction.submit_email(flow, "jenny@example.com")
    assert result.problem is None
    return result.flow


def step_result(outcome: StepResult | Completion) -> StepResult:
    assert isinstance(outcome, StepResult), outcome
    return outcome


def completion(outcome: StepResult | Completion) -> Completion:
    assert isinstance(outcome, Completion), outcome
    return outcome


def stored_flow(store: Store, flow: Flow) -> Flow:
    saved = store.load_flow(flow.id)
    assert saved is not None
    return saved


def json_leaves(value: Any) -> list[str]:
    """Every scalar in a JSON document, as text."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in json_leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in json_leaves(item)]
    return [str(value)]


# Starting and resuming


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
    assert stored_flow(store, flow) == flow
    assert BROWSER not in redis_client.get(PREFIX + "flow:" + flow.id)


def test_each_start_makes_a_new_flow_with_its_own_csrf_token(interaction: Interaction) -> None:
    first = interaction.start("shop", dict(AUTHORIZATION), BROWSER)
    second = interaction.start("shop", dict(AUTHORIZATION), BROWSER)

    assert first.id != second.id
    assert first.csrf_token != second.csrf_token


def test_resume_with_the_same_browser_returns_the_flow(
    interaction: Interaction, flow: Flow
) -> None:
    assert interaction.resume(flow.id, BROWSER) == flow


@pytest.mark.parametrize("browser_id", [OTHER_BROWSER, "", None])
def test_resume_from_another_browser_is_refused(
    interaction: Interaction, flow: Flow, browser_id: str | None
) -> None:
    with pytest.raises(FlowBrowserMismatchError):
        interaction.resume(flow.id, browser_id)


def test_resume_of_a_missing_flow_is_not_found(interaction: Interaction) -> None:
    with pytest.raises(FlowNotFoundError):
        interaction.resume("flow_does_not_exist", BROWSER)


def test_resume_of_an_expired_flow_is_not_found(
    interaction: Interaction, flow: Flow, clock: FixedClock
) -> None:
    clock.advance(Lifetimes().flow - 1)
    assert interaction.resume(flow.id, BROWSER) == flow

    clock.advance(1)

    with pytest.raises(FlowNotFoundError):
        interaction.resume(flow.id, BROWSER)


def test_the_flow_lifetime_comes_from_the_lifetimes_given(
    store: Store, clock: FixedClock, messages: list[str]
) -> None:
    short = Interaction(
        store, SandboxLinkClient(USERS, clock, messages.append), clock, Lifetimes(flow=30)
    )
    flow = short.start("shop", dict(AUTHORIZATION), BROWSER)

    clock.advance(30)

    with pytest.raises(FlowNotFoundError):
        short.resume(flow.id, BROWSER)


# Email step


@pytest.mark.parametrize("email", ["", "   ", "jenny", "jenny@example", "jen ny@example.com"])
def test_an_invalid_email_is_a_problem_and_stays_on_the_email_step(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str], email: str
) -> None:
    result = interaction.submit_email(flow, email)

    assert result.problem is Problem.INVALID_EMAIL
    assert result.flow.step == FlowStep.EMAIL
    assert stored_flow(store, flow).step == FlowStep.EMAIL
    assert messages == []


def test_an_overlong_email_is_invalid(interaction: Interaction, flow: Flow) -> None:
    email = "a" * 250 + "@example.com"

    assert interaction.submit_email(flow, email).problem is Problem.INVALID_EMAIL


def test_an_unknown_email_leads_to_the_not_on_link_step(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str]
) -> None:
    result = interaction.submit_email(flow, "Nobody@Example.com")

    assert result.problem is None
    assert result.flow.step == FlowStep.NOT_ON_LINK
    assert result.flow.email == "nobody@example.com"
    assert result.flow.link_client_secret is None
    assert stored_flow(store, flow) == result.flow
    assert messages == []


def test_from_not_on_link_another_email_can_be_tried(interaction: Interaction, flow: Flow) -> None:
    not_on_link = interaction.submit_email(flow, "nobody@example.com").flow

    result = interaction.submit_email(not_on_link, "jenny@example.com")

    assert result.problem is None
    assert result.flow.step == FlowStep.CODE


def test_a_known_email_leads_to_the_code_step_with_a_redacted_phone(
    interaction: Interaction, flow: Flow, store: Store, messages: list[str]
) -> None:
    result = interaction.submit_email(flow, "  JENNY@example.com ")

    assert result.problem is None
    assert result.flow.step == FlowStep.CODE
    assert result.flow.email == "jenny@example.com"
    assert result.flow.redacted_phone == "+1********23"
    assert result.flow.code_attempts == 0
    assert len(messages) == 1
    saved = stored_flow(store, flow)
    assert saved == result.flow
    assert saved.link_client_secret is not None
    assert saved.link_client_secret.startswith("sandbox_cs_")


def test_the_sms_code_is_stored_nowhere_in_redis(
    code_flow: Flow, redis_client: redis.Redis, messages: list[str]
) -> None:
    code = announced_code(messages)

    for key in redis_client.scan_iter("*"):
        assert code not in key.split(":")
        value = redis_client.get(key)
        assert code not in json_leaves(json.loads(value))
        assert digest(code) not in value


def test_submitting_an_email_during_the_code_step_starts_over(
    interaction: Interaction, code_flow: Flow, messages: list[str]
) -> None:
    result = interaction.submit_email(code_flow, "sam@example.com")

    assert result.flow.step == FlowStep.CODE
    assert result.flow.email == "sam@example.com"
    assert result.flow.link_client_secret != code_flow.link_client_secret
    assert len(messages) == 2


# Code step


@pytest.mark.parametrize("code", ["", "12345", "1234567", "12a456", "one23456"])
def test_a_malformed_code_is_a_format_problem_without_using_an_attempt(
    interaction: Interaction, code_flow: Flow, store: Store, code: str
) -> None:
    result = step_result(interaction.submit_code(code_flow, code))

    assert result.problem is Problem.INVALID_CODE_FORMAT
    assert result.flow == code_flow
    assert stored_flow(store, code_flow).code_attempts == 0


def test_a_wrong_code_is_a_problem_and_the_attempts_are_counted(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    wrong = wrong_code_for(announced_code(messages))

    first = step_result(interaction.submit_code(code_flow, wrong))
    second = step_result(interaction.submit_code(first.flow, wrong))

    assert first.problem is Problem.WRONG_CODE
    assert first.flow.code_attempts == 1
    assert second.problem is Problem.WRONG_CODE
    assert second.flow.code_attempts == 2
    assert second.flow.step == FlowStep.CODE
    assert stored_flow(store, code_flow).code_attempts == 2


def test_the_fifth_wrong_code_is_too_many_attempts_and_returns_to_the_email_step(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    wrong = wrong_code_for(announced_code(messages))
    flow = code_flow
    problems = []
    for _ in range(MAX_CODE_ATTEMPTS):
        result = step_result(interaction.submit_code(flow, wrong))
        problems.append(result.problem)
        flow = result.flow

    assert MAX_CODE_ATTEMPTS == 5
    assert problems == [Problem.WRONG_CODE] * 4 + [Problem.TOO_MANY_ATTEMPTS]
    assert flow.step == FlowStep.EMAIL
    assert flow.link_client_secret is None
    assert flow.redacted_phone is None
    assert flow.code_attempts == 0
    assert stored_flow(store, code_flow) == flow
    with pytest.raises(FlowStepError):
        interaction.submit_code(flow, announced_code(messages))


def test_the_announced_code_completes_the_flow(
    interaction: Interaction, code_flow: Flow, clock: FixedClock, messages: list[str]
) -> None:
    clock.advance(42)

    done = completion(interaction.submit_code(code_flow, announced_code(messages)))

    assert done.flow == code_flow
    assert done.flow.authorization == AUTHORIZATION
    assert done.identity == Identity(
        email="jenny@example.com", name="Jenny Rosen", auth_time=clock.now()
    )
    assert done.identity.amr == ("otp", "sms")


def test_the_identity_email_is_lower_cased(
    interaction: Interaction, flow: Flow, messages: list[str]
) -> None:
    code_flow = interaction.submit_email(flow, "SAM@EXAMPLE.COM").flow

    done = completion(interaction.submit_code(code_flow, announced_code(messages)))

    assert done.identity.email == "sam@example.com"
    assert done.identity.name is None


def test_spaces_in_the_typed_code_are_ignored(
    interaction: Interaction, code_flow: Flow, messages: list[str]
) -> None:
    code = announced_code(messages)

    outcome = interaction.submit_code(code_flow, f" {code[:3]} {code[3:]}\n")

    assert isinstance(outcome, Completion)


def test_a_right_code_after_wrong_ones_completes_the_flow(
    interaction: Interaction, code_flow: Flow, messages: list[str]
) -> None:
    code = announced_code(messages)
    flow = code_flow
    for _ in range(MAX_CODE_ATTEMPTS - 1):
        flow = step_result(interaction.submit_code(flow, wrong_code_for(code))).flow

    assert isinstance(interaction.submit_code(flow, code), Completion)


def test_after_completion_the_flow_is_gone_and_cannot_be_submitted_again(
    interaction: Interaction,
    code_flow: Flow,
    store: Store,
    redis_client: redis.Redis,
    messages: list[str],
) -> None:
    code = announced_code(messages)
    completion(interaction.submit_code(code_flow, code))

    assert store.load_flow(code_flow.id) is None
    assert list(redis_client.scan_iter("*")) == []
    # A second post of the code page resumes the flow first, as every hosted page does.
    with pytest.raises(FlowNotFoundError):
        interaction.resume(code_flow.id, BROWSER)
    # Even a caller holding the old flow cannot finish it twice.
    again = step_result(interaction.submit_code(code_flow, code))
    assert again.problem is Problem.CODE_EXPIRED
    assert store.load_flow(code_flow.id) is None


def test_a_code_step_action_on_an_email_step_flow_is_refused(
    interaction: Interaction, flow: Flow
) -> None:
    with pytest.raises(FlowStepError):
        interaction.submit_code(flow, "000000")
    with pytest.raises(FlowStepError):
        interaction.resend_code(flow)


def test_a_code_that_expired_at_link_stays_on_the_code_step(
    interaction: Interaction, code_flow: Flow, clock: FixedClock, messages: list[str]
) -> None:
    clock.advance(CODE_LIFETIME)

    result = step_result(interaction.submit_code(code_flow, announced_code(messages)))

    assert result.problem is Problem.CODE_EXPIRED
    assert result.flow.step == FlowStep.CODE


# Magic codes


def test_magic_code_000000_completes_the_flow(
    interaction: Interaction, code_flow: Flow, store: Store
) -> None:
    done = completion(interaction.submit_code(code_flow, "000000"))

    assert done.identity.email == "jenny@example.com"
    assert store.load_flow(code_flow.id) is None


def test_magic_code_000001_counts_as_a_wrong_code(
    interaction: Interaction, code_flow: Flow
) -> None:
    result = step_result(interaction.submit_code(code_flow, "000001"))

    assert result.problem is Problem.WRONG_CODE
    assert result.flow.code_attempts == 1


def test_magic_code_000002_is_expired_and_stays_on_the_code_step(
    interaction: Interaction, code_flow: Flow, store: Store
) -> None:
    result = step_result(interaction.submit_code(code_flow, "000002"))

    assert result.problem is Problem.CODE_EXPIRED
    assert result.flow.step == FlowStep.CODE
    assert stored_flow(store, code_flow) == code_flow


def test_magic_code_000003_is_too_many_attempts_and_returns_to_the_email_step(
    interaction: Interaction, code_flow: Flow, store: Store
) -> None:
    result = step_result(interaction.submit_code(code_flow, "000003"))

    assert result.problem is Problem.TOO_MANY_ATTEMPTS
    assert result.flow.step == FlowStep.EMAIL
    assert result.flow.link_client_secret is None
    assert stored_flow(store, code_flow) == result.flow


# Resend, another email, cancel


def test_resend_code_sends_a_new_code_that_works(
    interaction: Interaction, code_flow: Flow, store: Store, messages: list[str]
) -> None:
    wrong = step_result(interaction.submit_code(code_flow, "000001")).flow

    resent = interaction.resend_code(wrong)

    assert resent.problem is None
    assert len(messages) == 2
    assert resent.flow.step == FlowStep.CODE
    assert resent.flow.code_attempts == 0
    assert resent.flow.redacted_phone == "+1********23"
    assert stored_flow(store, code_flow) == resent.flow
    assert isinstance(interaction.submit_code(resent.flow, announced_code(messages)), Completion)


def test_use_another_email_returns_to_the_email_step(
    interaction: Interaction, code_flow: Flow, store: Store
) -> None:
    back = interaction.use_another_email(code_flow)

    assert back.step == FlowStep.EMAIL
    assert back.link_client_secret is None
    assert back.redacted_phone is None
    assert back.code_attempts == 0
    assert stored_flow(store, code_flow) == back
    with pytest.raises(FlowStepError):
        interaction.submit_code(back, "000000")


def test_cancel_removes_the_flow(interaction: Interaction, code_flow: Flow, store: Store) -> None:
    cancelled = interaction.cancel(code_flow)

    assert cancelled == code_flow
    assert store.load_flow(code_flow.id) is None
    with pytest.raises(FlowNotFoundError):
        interaction.resume(code_flow.id, BROWSER)
    with pytest.raises(FlowNotFoundError):
        interaction.cancel(code_flow)
