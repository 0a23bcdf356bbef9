"""Flow.advance copies a flow without dataclasses.replace: the same flow, field for field,
and the same refusals, on every kind of change a step makes (and some no step makes)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from oidc_link.models import AccountLinkTarget, Flow, FlowStep, Identity


def _flows() -> list[Flow]:
    base = Flow(
        id="flow_abc",
        browser_digest="digest",
        client_id="shop",
        authorization={"redirect_uri": "https://rp.example/cb", "state": "s"},
        csrf_token="token.c2hvcA",
        created_at=100,
        expires_at=700,
    )
    return [
        base,
        dataclasses.replace(base, step=FlowStep.CODE, email="a@b.example", sms_sent=1),
        dataclasses.replace(
            base,
            step=FlowStep.CONSENT,
            email="a@b.example",
            identity=Identity("a@b.example", "A", 5, city="Paris"),
            account_link=AccountLinkTarget("account_onboarding", "acct_1", "owner", "https://x"),
            locale="fr",
        ),
        dataclasses.replace(base, step=FlowStep.NOT_ON_LINK, locale=None),
        dataclasses.replace(base, step=FlowStep.LOCKED, code_attempts=5),
    ]


CHANGES: list[dict[str, object]] = [
    {},
    {"email": "x@y.example"},
    {"email": None, "redacted_phone": None, "link_client_secret": None, "identity": None},
    {"code_attempts": 3},
    {"csrf_token": "other", "sms_sent": 2, "sms_sent_at": 900},
    {"locale": "de"},
    {"authorization": {}},
    {"id": "flow_other", "expires_at": 0},
]
STEPS = [None, *FlowStep]


@pytest.mark.parametrize("flow", _flows())
def test_advance_gives_what_replace_gives_for_every_step_and_change(flow: Flow) -> None:
    for changes, step in itertools.product(CHANGES, STEPS):
        asked = dict(changes, **({"step": step} if step is not None else {}))
        try:
            expected: Flow | type[Exception] = _replaced(flow, asked)
        except Exception as error:  # the same kind of refusal is expected of advance
            expected = type(error)
        if isinstance(expected, Flow):
            got = flow.advance(**asked)
            assert got == expected
            assert vars(got) == vars(expected)
            assert list(vars(got)) == list(vars(expected))  # fields in the same order
            assert got.to_record() == expected.to_record()
            assert got is not flow and type(got) is Flow
        else:
            with pytest.raises(expected):
                flow.advance(**asked)
    assert flow == _flows()[_flows().index(flow)]  # the flow advanced from is unchanged


def _replaced(flow: Flow, changes: dict[str, object]) -> Flow:
    """What advance did before: the step's checks, then dataclasses.replace."""
    if "step" in changes:
        if changes["step"] == FlowStep.ENDED:
            raise ValueError("ended")
        flow.check_move(changes["step"])  # type: ignore[arg-type]
    return dataclasses.replace(flow, **changes)  # type: ignore[arg-type]


def test_advance_refuses_a_field_a_flow_does_not_have_as_replace_does() -> None:
    flow = _flows()[0]
    with pytest.raises(TypeError):
        dataclasses.replace(flow, colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="colour"):
        flow.advance(colour="red")


def test_an_advanced_flow_is_as_frozen_as_any() -> None:
    copied = _flows()[0].advance(email="a@b.example")
    with pytest.raises(dataclasses.FrozenInstanceError):
        copied.email = "c@d.example"  # type: ignore[misc]
    assert copied.email == "a@b.example"
