"""The steps of a sign-in flow (models.TRANSITIONS): every move outside the table raises
FlowStepError, and every hosted form posted at a step it is not for gets a 4xx page and
leaves the stored flow as it was.

The HTTP tests run twice, on the embedded fakeredis and on a real redis-server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from bs4 import BeautifulSoup
from flask import Flask

from oidc_link import models
from oidc_link.errors import FlowStepError
from oidc_link.models import TRANSITIONS, Flow, FlowStep
from oidc_link.store import Store
from tests.conftest import ISSUER, JENNY, ON_REDIS_CLUSTER
from tests.relying_party import Browser, RelyingParty
from tests.sandbox_console import announced_code, wrong_code_for

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

STORED_STEPS = [step for step in FlowStep if step is not FlowStep.ENDED]
ILLEGAL_MOVES = [
    (start, to) for start in STORED_STEPS for to in FlowStep if to not in TRANSITIONS[start]
]
LEGAL_MOVES = [(start, to) for start in STORED_STEPS for to in sorted(TRANSITIONS[start])]


def flow_at(step: str) -> Flow:
    return Flow(
        id="flow_steps",
        browser_digest="digest",
        client_id="shop",
        authorization={"redirect_uri": "https://shop.example.test/callback"},
        csrf_token="csrf",
        created_at=0,
        expires_at=600,
        step=step,
    )


def test_every_stored_step_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(STORED_STEPS)


def test_the_table_in_the_module_docstring_is_the_one_the_code_enforces() -> None:
    drawn = {
        start: frozenset(to.split(" | "))
        for start, to in re.findall(r"^ {4}(\w+) +-> (.+)$", models.__doc__ or "", re.M)
    }

    assert drawn == {start: frozenset(map(str, to)) for start, to in TRANSITIONS.items()}


@pytest.mark.parametrize(("start", "to"), ILLEGAL_MOVES)
def test_a_move_outside_the_table_raises_flow_step_error_naming_the_flow(
    start: FlowStep, to: FlowStep
) -> None:
    flow = flow_at(start)

    with pytest.raises(FlowStepError) as refused:
        flow.advance(step=to)

    assert refused.value.flow_id == flow.id
    assert refused.value.client_id == "shop"


@pytest.mark.parametrize(("start", "to"), LEGAL_MOVES)
def test_a_move_in_the_table_is_allowed(start: FlowStep, to: FlowStep) -> None:
    flow = flow_at(start)

    flow.check_move(to)
    if to is not FlowStep.ENDED:
        assert flow.advance(step=to).step == to


def test_the_table_refuses_exactly_the_moves_no_step_of_the_product_makes() -> None:
    # LOCKED only ends; only EMAIL reaches CODE and NOT_ON_LINK, only CODE reaches LOCKED;
    # a flow is at CONSENT only from its start (a new flow after the code, or SSO).
    assert set(ILLEGAL_MOVES) == {
        (FlowStep.EMAIL, FlowStep.LOCKED),
        (FlowStep.EMAIL, FlowStep.CONSENT),
        (FlowStep.CODE, FlowStep.NOT_ON_LINK),
        (FlowStep.CODE, FlowStep.CONSENT),
        (FlowStep.NOT_ON_LINK, FlowStep.CODE),
        (FlowStep.NOT_ON_LINK, FlowStep.NOT_ON_LINK),
        (FlowStep.NOT_ON_LINK, FlowStep.LOCKED),
        (FlowStep.NOT_ON_LINK, FlowStep.CONSENT),
        (FlowStep.LOCKED, FlowStep.EMAIL),
        (FlowStep.LOCKED, FlowStep.CODE),
        (FlowStep.LOCKED, FlowStep.NOT_ON_LINK),
        (FlowStep.LOCKED, FlowStep.LOCKED),
        (FlowStep.LOCKED, FlowStep.CONSENT),
        (FlowStep.CONSENT, FlowStep.CODE),
        (FlowStep.CONSENT, FlowStep.NOT_ON_LINK),
        (FlowStep.CONSENT, FlowStep.LOCKED),
        (FlowStep.CONSENT, FlowStep.CONSENT),
    }


@pytest.mark.parametrize("start", STORED_STEPS)
def test_a_flow_never_advances_to_ended_because_it_ends_by_leaving_the_store(
    start: FlowStep,
) -> None:
    with pytest.raises(ValueError, match="taken from the store"):
        flow_at(start).advance(step=FlowStep.ENDED)


@pytest.mark.parametrize("start", STORED_STEPS)
def test_a_form_for_one_step_is_refused_at_every_other(start: FlowStep) -> None:
    flow = flow_at(start)

    flow.check_at(start)
    for other in STORED_STEPS:
        if other != start:
            with pytest.raises(FlowStepError):
                flow.check_at(other)


def test_a_step_no_version_knows_allows_no_move() -> None:
    flow = flow_at("a_step_from_elsewhere")

    for to in FlowStep:
        with pytest.raises(FlowStepError):
            flow.check_move(to)


# Through the app: a form kept from an earlier page, posted once the flow has moved on.


@dataclass(frozen=True)
class KeptForm:
    """A form as a page showed it: where it posts and what it sends."""

    action: str
    fields: dict[str, str]

    @classmethod
    def of(cls, browser: Browser, suffix: str) -> KeptForm:
        form = browser.soup().find("form", action=lambda a: bool(a) and a.endswith(suffix))
        assert form is not None, f"no {suffix} form on this page"
        fields = {
            field["name"]: field.get("value", "")
            for field in form.find_all("input")
            if field.get("name")
        }
        return cls(form["action"], fields)


def at_code_step(browser: Browser, shop: RelyingParty) -> None:
    browser.start(shop.authorization_request().url)
    browser.submit("/email", email=JENNY)
    assert browser.soup().find("input", attrs={"name": "code"}) is not None


def lock_out(browser: Browser, console: list[str]) -> None:
    wrong = wrong_code_for(announced_code(console))
    for _ in range(5):
        browser.submit("/code", code=wrong)
    assert browser.soup().h1.get_text(strip=True) == "This sign-in has ended"


def kept_email_form_then_locked(browser: Browser, shop: RelyingParty, console: list[str]):
    browser.start(shop.authorization_request().url)
    kept = KeptForm.of(browser, "/email")
    browser.submit("/email", email=JENNY)
    lock_out(browser, console)
    return KeptForm(kept.action, {**kept.fields, "email": "sam@example.com"})


def kept_code_form_then_email_step(browser: Browser, shop: RelyingParty, console: list[str]):
    at_code_step(browser, shop)
    kept = KeptForm.of(browser, "/code")
    browser.submit("/restart")
    return KeptForm(kept.action, {**kept.fields, "code": announced_code(console)})


def kept_resend_form_then_email_step(browser: Browser, shop: RelyingParty, console: list[str]):
    at_code_step(browser, shop)
    kept = KeptForm.of(browser, "/resend")
    browser.submit("/restart")
    return kept


def kept_restart_form_then_locked(browser: Browser, shop: RelyingParty, console: list[str]):
    at_code_step(browser, shop)
    kept = KeptForm.of(browser, "/restart")
    lock_out(browser, console)
    return kept


def allow_forged_at_the_code_step(browser: Browser, shop: RelyingParty, console: list[str]):
    # No page offers Allow outside the consent step: the post is made by hand, with the
    # flow's own CSRF token, as a forged or replayed form would be.
    at_code_step(browser, shop)
    code_form = KeptForm.of(browser, "/code")
    return KeptForm(code_form.action.removesuffix("/code") + "/allow", code_form.fields)


# Each hosted form, and how to post it at a step it is not for. Cancel has no such step:
# "Back to the site" and Deny end a flow from wherever it is.
WRONG_STEP_POSTS: dict[str, Callable[[Browser, RelyingParty, list[str]], KeptForm]] = {
    "email at the locked step": kept_email_form_then_locked,
    "code at the email step": kept_code_form_then_email_step,
    "resend at the email step": kept_resend_form_then_email_step,
    "use another email at the locked step": kept_restart_form_then_locked,
    "allow at the code step": allow_forged_at_the_code_step,
}


@pytest.mark.parametrize("post", WRONG_STEP_POSTS.values(), ids=list(WRONG_STEP_POSTS))
def test_a_hosted_form_posted_at_a_step_it_is_not_for_gets_a_409_page_and_changes_nothing(
    app: Flask,
    browser: Browser,
    shop: RelyingParty,
    store: Store,
    console: list[str],
    post: Callable[[Browser, RelyingParty, list[str]], KeptForm],
) -> None:
    form = post(browser, shop, console)
    flow_path = form.action.rsplit("/", 1)[0]
    before = store.flows.load(flow_path.rsplit("/", 1)[1])
    assert before is not None
    sent = len(console)

    answer = browser.client.post(form.action, data=form.fields, base_url=ISSUER)

    assert answer.status_code == 409
    assert answer.mimetype == "text/html"
    text = answer.get_data(as_text=True)
    assert "nothing was changed" in text
    assert answer.headers["Request-Id"] in text
    assert store.flows.load(before.id) == before
    assert len(console) == sent  # no SMS was sent
    link = BeautifulSoup(text, "html.parser").find("a", string="Continue signing in")
    assert link["href"] == flow_path
    assert browser.get(link["href"]).status_code == 200
