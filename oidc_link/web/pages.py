"""Hosted sign-in pages: email, code, not-on-Link.

Each POST either redirects (post/redirect/get) or shows the same step with a message.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, redirect, render_template, request, url_for

from oidc_link.errors import FlowError, FlowFormExpiredError, FlowNotFoundError
from oidc_link.ids import same
from oidc_link.interaction import Completion, Problem, StepResult
from oidc_link.models import Flow, FlowStep
from oidc_link.oauth import AuthorizationPageError
from oidc_link.web.browser import browser_id
from oidc_link.web.context import web_context
from oidc_link.web.errors import error_page
from oidc_link.web.protocol import to_flask

log = logging.getLogger(__name__)

pages = Blueprint("pages", __name__)

PROBLEM_MESSAGES = {
    Problem.INVALID_EMAIL: "Enter an email address like name@example.com.",
    Problem.INVALID_CODE_FORMAT: "Enter the 6-digit code from the text message.",
    Problem.WRONG_CODE: "That code is not right. Check the text message and try again.",
    Problem.CODE_EXPIRED: "That code has expired. Send a new code and try again.",
    Problem.TOO_MANY_ATTEMPTS: (
        "Too many attempts with that code. Enter your email to get a new one."
    ),
    Problem.LINK_UNAVAILABLE: "Link is not answering right now. Please try again in a moment.",
}
_TEMPLATES = {
    FlowStep.EMAIL: "email.html",
    FlowStep.CODE: "code.html",
    FlowStep.NOT_ON_LINK: "not_on_link.html",
}


@pages.errorhandler(FlowError)
def flow_error(error: FlowError) -> tuple[str, int]:
    status = 404 if isinstance(error, FlowNotFoundError) else 400
    return error_page("This sign-in can't continue", error.message, status)


@pages.errorhandler(AuthorizationPageError)
def authorization_error(error: AuthorizationPageError) -> tuple[str, int]:
    log.warning("Finished flow no longer matches its client: %s", error.error.error)
    return error_page(
        "We can't send you back", "The site's registration has changed. Please start again.", 400
    )


@pages.get("/signin/<flow_id>")
def show(flow_id: str) -> tuple[str, int]:
    return _render(_flow(flow_id))


@pages.post("/signin/<flow_id>/email")
def submit_email(flow_id: str) -> Response | tuple[str, int]:
    flow = _posted_flow(flow_id)
    return _after(web_context().interaction.submit_email(flow, request.form.get("email", "")))


@pages.post("/signin/<flow_id>/code")
def submit_code(flow_id: str) -> Response | tuple[str, int]:
    context = web_context()
    outcome = context.interaction.submit_code(_posted_flow(flow_id), request.form.get("code", ""))
    if isinstance(outcome, Completion):
        return to_flask(context.provider.approve(outcome.flow.authorization, outcome.identity))
    return _after(outcome)


@pages.post("/signin/<flow_id>/resend")
def resend_code(flow_id: str) -> Response | tuple[str, int]:
    return _after(web_context().interaction.resend_code(_posted_flow(flow_id)))


@pages.post("/signin/<flow_id>/restart")
def restart(flow_id: str) -> Response:
    flow = web_context().interaction.use_another_email(_posted_flow(flow_id))
    return redirect(url_for("pages.show", flow_id=flow.id), 303)


@pages.post("/signin/<flow_id>/cancel")
def cancel(flow_id: str) -> Response:
    context = web_context()
    flow = context.interaction.cancel(_posted_flow(flow_id))
    return to_flask(context.provider.deny(flow.authorization))


def _flow(flow_id: str) -> Flow:
    return web_context().interaction.resume(flow_id, browser_id())


def _posted_flow(flow_id: str) -> Flow:
    flow = _flow(flow_id)
    if not same(request.form.get("csrf_token", ""), flow.csrf_token):
        raise FlowFormExpiredError()
    return flow


def _after(result: StepResult) -> Response | tuple[str, int]:
    """Post/redirect/get on success; on a problem, show the same step with its message."""
    if result.problem is None:
        return redirect(url_for("pages.show", flow_id=result.flow.id), 303)
    status = 503 if result.problem is Problem.LINK_UNAVAILABLE else 400
    return _render(result.flow, PROBLEM_MESSAGES[result.problem], status)


def _render(flow: Flow, error: str | None = None, status: int = 200) -> tuple[str, int]:
    client = web_context().services.settings.client(flow.client_id)
    page = render_template(
        _TEMPLATES[flow.step],
        flow=flow,
        client_name=client.display_name if client else flow.client_id,
        email_value=flow.email or flow.authorization.get("login_hint", ""),
        error=error,
    )
    return page, status
