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
    """A hosted sign-in flow cannot continue; the page says so and offers a way out.

    ``client_id`` and ``redirect_uri`` are set when we still know which site the user
    came from, so the page can offer the way back there.
    """

    message = "This sign-in cannot continue."

    def __init__(self, client_id: str | None = None, redirect_uri: str | None = None) -> None:
        super().__init__(self.message)
        self.client_id = client_id
        self.redirect_uri = redirect_uri


class FlowNotFoundError(FlowError):
    message = "We can't find this sign-in. Go back to the site you came from and start again."


class FlowExpiredError(FlowError):
    message = "This sign-in has expired. Go back to the site and start again."


class FlowFinishedError(FlowError):
    """The flow already ended (the user finished, or cancelled); not a fault of the user's."""

    message = "You have already finished signing in here. You can go back to the site."

    def __init__(
        self,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        resume_at: str | None = None,
        response_mode: str = "query",
    ) -> None:
        super().__init__(client_id, redirect_uri)
        # Where a double-submitted form should land: the answer the first submit produced,
        # delivered the way the relying party asked for it.
        self.resume_at = resume_at
        self.response_mode = response_mode


class FlowBrowserMismatchError(FlowError):
    message = (
        "This sign-in was started in another browser. Go back to the site and start again here."
    )


class FlowBusyError(FlowError):
    message = "This sign-in is still busy with your last step. Wait a moment and reload the page."


class FlowStepError(FlowError):
    """A form for a step the flow is not at (a code after "Use another email" in another
    tab, say); nothing was changed, and ``flow_id`` names the flow to continue."""

    message = (
        "This sign-in is no longer at the step this form was for, so nothing was changed. "
        "Continue from where your sign-in is now."
    )

    def __init__(
        self,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        *,
        flow_id: str | None = None,
    ) -> None:
        super().__init__(client_id, redirect_uri)
        self.flow_id = flow_id


class FlowFormExpiredError(FlowError):
    message = "This form is out of date. Go back, reload the page and try again."


class StoreUnavailableError(Exception):
    """Redis cannot be reached (refused, reset or timed out) after the client's bounded
    retries, or answers but refuses writes; the request may succeed if repeated in a few
    seconds.

    Raised by every Store method in place of redis-py's errors, so that the layers above
    need not import redis to tell an outage from a bug. ``cause`` names which, for logs
    and metrics: ``unreachable``, ``out_of_memory`` (maxmemory reached under noeviction),
    ``read_only`` (a replica, as after a failover) or ``misconf`` (Redis cannot persist
    and stops writes).
    """

    def __init__(self, message: str, cause: str = "unreachable") -> None:
        super().__init__(message)
        self.cause = cause
