"""Our error families; protocol errors (OAuth/OIDC) come from Authlib instead."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigError(Exception):
    """Every problem found in a configuration, reported together."""

    def __init__(self, problems: list[ConfigProblem], source: str = "configuration") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {source}: {problem}" for problem in problems)
        super().__init__(f"{len(problems)} problem(s) in {source}:\n{lines}")


class FlowError(Exception):
    """A hosted sign-in flow cannot continue; the page says so and offers a way out."""

    message = "This sign-in cannot continue."


class FlowNotFoundError(FlowError):
    message = (
        "This sign-in has expired or was already finished. Go back to the site and start again."
    )


class FlowBrowserMismatchError(FlowError):
    message = (
        "This sign-in was started in another browser. Go back to the site and start again here."
    )


class FlowStepError(FlowError):
    message = "This step of the sign-in is not available right now. Please start again."


class FlowFormExpiredError(FlowError):
    message = "This form is out of date. Go back, reload the page and try again."
