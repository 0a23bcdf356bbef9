"""The CPU budget of each HTTP exchange of a sign-in and of the refresh grant (issue 16 item 3):
this stack's measured floors, the rule that turns the 3 ms target into a budget per step, and
the table ``bench.in_process`` prints. Figures only; the measuring is bench/in_process.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# This stack's floors, in ms of CPU on the 2-core bench machine, all under granian with
# 2 workers x 8 threads (issue 16, "This stack's floor", measured at 868ada5).
GRANIAN_PER_REQUEST = 0.076  # bench.server_floor: fixed bytes, no app (bench/floor_app.py)
# A Flask view rendering a small Jinja template, granian included. Redirects and JSON
# answers are counted at this figure too, so their floor is a little high.
FLASK_VIEW = 0.18
REDIS_ROUND_TRIP = 0.081  # one redis-py round trip, client side
REDIS_MULTI = 0.127  # one MULTI of two commands: a step that writes several keys together
RS256_SIGNATURE = 0.25  # one RS256 signature with the key already loaded (PyJWT)

# Issue 16 item 2: a sign-in's server CPU at most 0.67x the equal-UX peer's ~4.5 ms.
SIGN_IN_TARGET = 3.0


@dataclass(frozen=True)
class Step:
    """One HTTP exchange and what it cannot do without: a view, one Redis round trip (issue
    16 item 4; a MULTI where it must write several keys at once) and its signatures."""

    name: str
    method: str
    redis: float
    signatures: int = 0

    @property
    def floor(self) -> float:
        return FLASK_VIEW + self.redis + self.signatures * RS256_SIGNATURE


SIGN_IN = (
    Step("authorize page", "GET", REDIS_ROUND_TRIP),  # store the flow
    Step("email POST", "POST", REDIS_MULTI),  # limits and the flow, under its lock
    Step("code page", "GET", REDIS_ROUND_TRIP),  # read the flow
    Step("code POST", "POST", REDIS_MULTI),  # end the flow, SSO session and code together
    Step("token", "POST", REDIS_MULTI, signatures=1),  # take the code, open the family; ID token
)
REFRESH = Step("refresh grant", "POST", REDIS_MULTI, signatures=1)  # rotate the token; ID token
STEPS = (*SIGN_IN, REFRESH)


def sign_in_floor() -> float:
    return sum(step.floor for step in SIGN_IN)


def budget(step: Step) -> float:
    """Each step gets the same multiple of its floor, the one that makes a sign-in's steps
    add up to the target: a step that must do more (sign, write more keys) gets more."""
    return step.floor * SIGN_IN_TARGET / sign_in_floor()


@dataclass(frozen=True)
class Overheads:
    """What the in-process figures include or lack against a served request, in ms."""

    test_client: Mapping[str, float]  # by method: the test client's own cost, subtracted
    server: float = GRANIAN_PER_REQUEST  # added: in-process runs without granian


def today(step: Step, in_process_ms: float, overheads: Overheads) -> float:
    """A step's in-process cost as a served request would pay it."""
    return in_process_ms - overheads.test_client[step.method] + overheads.server


def verdict(budget_ms: float, today_ms: float) -> str:
    difference = today_ms - budget_ms
    return f"{'over' if difference > 0 else 'under'} by {abs(difference):.2f}"


def table(in_process: Mapping[str, float], overheads: Overheads) -> str:
    """Step, budget, floor, today and over/under, then the sign-in's total, as a Markdown
    table (docs/performance.md keeps the same one)."""
    rows = ["| step | budget ms | floor ms | today ms | over/under |", "|---|---|---|---|---|"]

    def row(name: str, budget_ms: float, floor_ms: float, today_ms: float) -> None:
        rows.append(
            f"| {name} | {budget_ms:.2f} | {floor_ms:.2f} | {today_ms:.2f} "
            f"| {verdict(budget_ms, today_ms)} |"
        )

    costs = {step.name: today(step, in_process[step.name], overheads) for step in STEPS}
    for step in SIGN_IN:
        row(step.name, budget(step), step.floor, costs[step.name])
    total = sum(costs[step.name] for step in SIGN_IN)
    row(f"sign-in ({len(SIGN_IN)} exchanges)", SIGN_IN_TARGET, sign_in_floor(), total)
    row(REFRESH.name, budget(REFRESH), REFRESH.floor, costs[REFRESH.name])
    return "\n".join(rows)


def share_of_budget(cost_ms: float) -> str:
    return f"{cost_ms:.3f} ms per sign-in, {100 * cost_ms / SIGN_IN_TARGET:.1f} % of the budget"
