"""DomainError (code, message, param) and its families, plus the errors kept apart
(configuration, Redis outage). Protocol errors (OAuth/OIDC) are Authlib's; each web surface
maps both in one function (web/errors.py, web/api/errors.py)."""

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


class DomainError(Exception):
    """Something a caller or user must be told, in our terms rather than HTTP's.

    ``code`` is stable: /v1 answers it, and hosted pages pick their words by it;
    ``message`` is plain English for logs and /v1; ``param`` names the input at fault, when
    one is. A subclass sets ``code`` and ``message`` as class defaults; an instance may
    narrow them (a PlatformError carries Stripe's code for the exact fault).
    """

    code: str = "domain_error"
    message: str = "The request cannot be completed."
    param: str | None = None

    def __init__(
        self, message: str | None = None, *, code: str | None = None, param: str | None = None
    ) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param
        super().__init__(self.message)


class FlowError(DomainError):
    """A hosted sign-in flow cannot continue; the page says so and offers a way out.

    ``client_id`` and ``redirect_uri`` are set when we still know which site the user
    came from, so the page can offer the way back there (DESIGN.md §4).
    """

    code = "flow_cannot_continue"
    message = "This sign-in cannot continue."

    def __init__(self, client_id: str | None = None, redirect_uri: str | None = None) -> None:
        super().__init__()
        self.client_id = client_id
        self.redirect_uri = redirect_uri


class FlowNotFoundError(FlowError):
    """No flow under this id: never started, mistyped, or its record was lost."""

    code = "flow_not_found"
    message = "We can't find this sign-in. Go back to the site you came from and start again."


class FlowExpiredError(FlowError):
    """The flow outlived its lifetime before the user finished."""

    code = "flow_expired"
    message = "This sign-in has expired. Go back to the site and start again."


class FlowFinishedError(FlowError):
    """The flow already ended (the user finished, or cancelled); not a fault of the user's."""

    code = "flow_finished"
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
    """The flow is bound to the browser that began it (its cookie); this is another one,
    so a sign-in page's URL passed to someone else cannot be finished there."""

    code = "flow_browser_mismatch"
    message = (
        "This sign-in was started in another browser. Go back to the site and start again here."
    )


class FlowBusyError(FlowError):
    """Another request holds the flow's lock (a double submit still being answered)."""

    code = "flow_busy"
    message = "This sign-in is still busy with your last step. Wait a moment and reload the page."


class FlowStepError(FlowError):
    """A form for a step the flow is not at (a code after "Use another email" in another
    tab, say); nothing was changed, and ``flow_id`` names the flow to continue."""

    code = "flow_step"
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
    """The form's CSRF token is not this flow's (an old tab, or a forged post)."""

    code = "flow_form_expired"
    message = "This form is out of date. Go back, reload the page and try again."


class FlowClientChangedError(FlowError):
    """A finished flow's stored request no longer passes its client's registration (the
    client or its redirect URI changed meanwhile), so there is nowhere safe to send the
    user back to (RFC 6749 §4.1.2.1: never redirect to an unverified redirect URI)."""

    code = "flow_client_changed"
    message = "The site's registration has changed. Please start again."


class PlatformError(DomainError):
    """A /v1 request a platform must fix (Stripe's ``invalid_request_error``): ``param``
    names the parameter, ``code`` is Stripe's code for the fault
    (docs.stripe.com/error-codes). ``missing`` when the object the request is about does
    not exist (Stripe answers 404 then)."""

    code = "parameter_invalid"
    message = "The request has an invalid parameter."
    missing = False

    def __init__(self, param: str, code: str, message: str) -> None:
        super().__init__(message, code=code, param=param)


class LogoutError(DomainError):
    """A logout request or confirmation we refuse without redirecting anywhere
    (RP-Initiated Logout 1.0 §2: an unverified post_logout_redirect_uri is never used);
    the message is for the user."""

    code = "logout_refused"
    message = "This sign-out cannot continue."


class StoreUnavailableError(Exception):
    """Redis cannot be reached (refused, reset or timed out) after the client's bounded
    retries, or answers but refuses writes; the request may succeed if repeated in a few
    seconds.

    Raised by every Store method in place of redis-py's errors, so that the layers above
    need not import redis to tell an outage from a bug. ``cause`` names which, for logs
    and metrics: ``unreachable``, ``out_of_memory`` (maxmemory reached under noeviction),
    ``read_only`` (a replica, as after a failover), ``misconf`` (Redis cannot persist
    and stops writes) or ``no_replica`` (no replica acknowledged a spend in time, with
    ``[redis] wait_for_replica_ms``; or NOREPLICAS, with min-replicas-to-write).
    """

    def __init__(self, message: str, cause: str = "unreachable") -> None:
        super().__init__(message)
        self.cause = cause
