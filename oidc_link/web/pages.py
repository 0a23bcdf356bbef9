"""Hosted sign-in pages: email, code, not-on-Link, locked out, consent.

Each POST either redirects (post/redirect/get) or shows the same step with a message.
"""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Request, Response, redirect, request, url_for

from oidc_link.errors import FlowClientChangedError, FlowError, FlowFinishedError
from oidc_link.interaction import RATE_PROBLEMS, Completion, FlowRequest, Problem, StepResult
from oidc_link.models import Flow, Identity
from oidc_link.oauth.messages import AuthorizationPageError, ProtocolResponse
from oidc_link.services import Services
from oidc_link.sign_in import Finished, Next, SignInRequest, Via
from oidc_link.store import Writes
from oidc_link.store.accounts import AccountRead
from oidc_link.web.account import is_account_link_flow, leave_account_link_flow
from oidc_link.web.answers import authorization_answer, redirect_to
from oidc_link.web.browser import browser_id_of, session_secret, set_session_cookie
from oidc_link.web.context import services
from oidc_link.web.devices import describe_device
from oidc_link.web.errors import page_for
from oidc_link.web.flow_render import Page, page_response, render_flow_page
from oidc_link.web.languages import PageLanguage, translatable, use_language

log = logging.getLogger(__name__)

pages = Blueprint("pages", __name__)

# What each problem's page says, in English here and in the page's language when shown.
# ``%(wait)s`` is a wait in minutes, ``%(seconds)s`` one in seconds (the redirect's detail).
PROBLEM_MESSAGES = {
    Problem.INVALID_EMAIL: translatable("Enter an email address like name@example.com."),
    Problem.INVALID_CODE_FORMAT: translatable("Enter the 6-digit code from the text message."),
    Problem.CODE_EXPIRED: translatable("That code has expired. Send a new code and try again."),
    Problem.TOO_MANY_ATTEMPTS: translatable(
        "Too many wrong codes. For your safety this sign-in has ended."
    ),
    Problem.RESEND_TOO_SOON: translatable(
        "A code is on its way. You can ask for a new one in %(seconds)s s."
    ),
    Problem.NO_MORE_RESENDS: translatable(
        "No more codes can be sent for this sign-in. Start again later."
    ),
    Problem.TOO_MANY_LOOKUPS: translatable(
        "Too many tries from your network. Please try again in %(wait)s."
    ),
    Problem.TOO_MANY_SMS: translatable(
        "Too many codes were sent to this email. Please try again in %(wait)s."
    ),
    Problem.LINK_RATE_LIMITED: translatable(
        "Link is busy right now. Please wait a moment and try again."
    ),
    Problem.LINK_UNAVAILABLE: translatable(
        "Link is not answering right now. Please try again in a moment."
    ),
    Problem.LINK_MISMATCH: translatable(
        "Link could not confirm this email. Please enter it again."
    ),
    Problem.LINK_SESSION_EXPIRED: translatable(
        "That code request expired. Enter your email to get a new code."
    ),
    Problem.EMAIL_TAKEN: translatable(
        "That email is already connected to another account here. Enter a different email."
    ),
    Problem.EMAIL_CONTROL_CHARACTERS: translatable(
        "That email had invisible characters that can't be part of an address. We took them "
        "out: check the address and try again."
    ),
}
# The flow page's route is this prefix and the flow's id; the sign-in's own pages and
# redirects build its URL from them (flow_page_url) rather than through url_for.
FLOW_PAGE_PREFIX = "/signin/"
# What ids.new_id draws from: characters a URL path carries as they are.
_PLAIN_FLOW_ID = re.compile(r"[A-Za-z0-9_-]+")
_PROBLEMS = {problem.value: problem for problem in Problem}


@pages.errorhandler(FlowError)
def flow_error(error: FlowError) -> Response:
    if isinstance(error, FlowFinishedError) and error.resume_at:
        # A double submit: go where the first submit went (a code, or access_denied).
        return authorization_answer(
            error.resume_at, error.redirect_uri, error.response_mode, status=303
        )
    return page_for(error).response()


@pages.errorhandler(AuthorizationPageError)
def authorization_error(error: AuthorizationPageError) -> Response:
    log.warning("Finished flow no longer matches its client: %s", error.error.error)
    return page_for(FlowClientChangedError()).response()


@pages.get(FLOW_PAGE_PREFIX + "<flow_id>")
def show(flow_id: str) -> Response:
    found = services()
    http = _request()
    flow = found.interaction.view(_flow_request(found, http, flow_id, form=False))
    problem = _notice(http)
    if problem is None:
        return page_response(_render(found, http, flow))
    detail = http.args.get("detail", type=int)
    message = _problem_message(use_language(flow.locale), problem, detail)
    return page_response(_render(found, http, flow, message, _status_of(problem)))


def _problem_message(language: PageLanguage, problem: Problem, detail: int | None) -> str:
    """What the page says about ``problem`` in its language; ``detail`` is the tries left
    (a wrong code) or a wait in seconds (the rate limits)."""
    if problem is Problem.WRONG_CODE:
        return language.ngettext(
            "That code is not right. You can try %(count)s more time.",
            "That code is not right. You can try %(count)s more times.",
            detail or 0,
        )
    return language.gettext(
        PROBLEM_MESSAGES[problem],
        seconds=language.number(detail or 0),
        wait=language.minutes(detail),
    )


@pages.post("/signin/<flow_id>/email")
def submit_email(flow_id: str) -> Response:
    found = services()
    http = _request()
    email = http.form.get("email", "")
    return _after(found.interaction.submit_email(_flow_request(found, http, flow_id), email))


@pages.post("/signin/<flow_id>/code")
def submit_code(flow_id: str) -> Response:
    found = services()
    http = _request()
    asked = _flow_request(found, http, flow_id)
    finished: list[Finished] = []
    read: list[AccountRead] = []  # the account, read ahead in the lock's round trip

    def read_ahead(client_id: str, email: str) -> AccountRead | None:
        ahead = found.sign_in.read_ahead(client_id, email)
        if ahead is not None:
            read.append(ahead)
        return ahead

    def finish(flow: Flow, identity: Identity, writes: Writes) -> str:
        # Runs under the flow's lock; sign_in.py decides, this page only says where to.
        outcome = found.sign_in.complete(
            SignInRequest.of(flow),
            identity,
            Via.CODE,
            browser=asked.browser_id,
            device=describe_device(http.headers.get("User-Agent")),
            writes=writes,
            account_read=read[0] if read else None,
        )
        finished.append(outcome)
        return _where(outcome)

    outcome = found.interaction.submit_code(asked, http.form.get("code", ""), finish, read_ahead)
    if isinstance(outcome, Completion):
        # A form_post answer is a page too, in the sign-in's language.
        use_language(outcome.flow.locale)
        if is_account_link_flow(outcome.flow):
            # Back to the platform (or the account page): a plain GET after the POST.
            return redirect(outcome.redirect_to, 303)
        authorization = outcome.flow.authorization
        response = authorization_answer(
            outcome.redirect_to,
            authorization.get("redirect_uri"),
            authorization.get("response_mode"),
        )
        secret = finished[0].session_secret
        if secret is not None:
            set_session_cookie(
                response,
                secret,
                secure=found.settings.secure_cookies,
                max_age=found.sessions.cookie_lifetime,
            )
        return response
    return _after(outcome)


@pages.post("/signin/<flow_id>/allow")
def allow(flow_id: str) -> Response:
    """Allow on the consent page: remembered for this client, then the code goes to the RP."""
    found = services()
    session = found.sessions.find(session_secret())

    def approve(flow: Flow, identity: Identity) -> str:
        return _where(
            found.sign_in.complete(
                SignInRequest.of(flow), identity, Via.CONSENT, browser=None, session=session
            )
        )

    outcome = found.interaction.allow(_flow_request(found, _request(), flow_id), approve)
    use_language(outcome.flow.locale)
    authorization = outcome.flow.authorization
    return authorization_answer(
        outcome.redirect_to, authorization.get("redirect_uri"), authorization.get("response_mode")
    )


def _where(outcome: Finished) -> str:
    """The URL a finished sign-in sends the browser to: the RP (or return_url), else the
    page of the new flow sign_in.py started."""
    if outcome.next is Next.REDIRECT:
        if not outcome.location:
            raise RuntimeError("an authorization response is always a redirect")
        return outcome.location
    assert outcome.flow is not None
    if outcome.next is Next.EMAIL_TAKEN:
        return url_for("pages.show", flow_id=outcome.flow.id, notice=Problem.EMAIL_TAKEN.value)
    return url_for("pages.show", flow_id=outcome.flow.id)


def flow_page(found: Services, http: Request, flow: Flow) -> Page:
    """The page of a flow's current step, as ``GET /signin/<id>`` shows it; /authorize
    answers a new sign-in with it (its email page) instead of a redirect here."""
    return render_flow_page(found, http, flow, flow_page_url(http, flow.id))


def pending_flow_page(flow_id: str) -> Page | None:
    """The page of a pending flow this browser began, as ``GET /signin/<id>`` shows it;
    None when the flow has finished, expired or is unknown: the caller starts over.

    Not the calm page of a finished flow: the same URL may be a new request (a site with a
    fixed ``state``), which the SSO session answers, as any provider's /authorize does.
    """
    found = services()
    http = _request()
    asked = _flow_request(found, http, flow_id, form=False)
    if asked.browser_id is None:
        return None  # the binding cookie is gone (a new browser session): nothing to show
    try:
        flow = found.interaction.view(asked)
    except FlowError:
        return None
    return _render(found, http, flow)


@pages.post("/signin/<flow_id>/resend")
def resend_code(flow_id: str) -> Response:
    found = services()
    return _after(found.interaction.resend_code(_flow_request(found, _request(), flow_id)))


@pages.post("/signin/<flow_id>/restart")
def restart(flow_id: str) -> Response:
    found = services()
    flow = found.interaction.use_another_email(_flow_request(found, _request(), flow_id))
    return redirect(url_for("pages.show", flow_id=flow.id), 303)


@pages.post("/signin/<flow_id>/cancel")
def cancel(flow_id: str) -> Response:
    found = services()
    ended: list[Flow] = []

    def deny(flow: Flow) -> str:
        ended.append(flow)
        if is_account_link_flow(flow):
            return leave_account_link_flow(flow)
        return _location(found.provider.deny(flow.authorization))

    location = found.interaction.cancel(_flow_request(found, _request(), flow_id), deny)
    authorization = ended[0].authorization
    return authorization_answer(
        location, authorization.get("redirect_uri"), authorization.get("response_mode")
    )


def flow_page_url(http: Request, flow_id: str) -> str:
    """``url_for("pages.show", flow_id=flow_id)`` for a request, without a URL build (about
    4 µs each, 3 per sign-in): the mount point, the prefix and the id, which needs no quoting
    when it is one of ours. Any other id goes through url_for."""
    if _PLAIN_FLOW_ID.fullmatch(flow_id):
        return http.script_root + FLOW_PAGE_PREFIX + flow_id
    return url_for("pages.show", flow_id=flow_id)


def _request() -> Request:
    """The request itself, not the proxy: each read through ``request`` looks it up again."""
    return request._get_current_object()  # type: ignore[attr-defined, no-any-return]


def _flow_request(
    found: Services, http: Request, flow_id: str, *, form: bool = True
) -> FlowRequest:
    return FlowRequest(
        flow_id=flow_id,
        browser_id=browser_id_of(http, secure=found.settings.secure_cookies),
        csrf_token=http.form.get("csrf_token", "") if form else None,
        client_ip=http.remote_addr or "",
    )


def _location(response: ProtocolResponse) -> str:
    if not response.location:
        raise RuntimeError("an authorization response is always a redirect")
    return response.location


def _after(result: StepResult) -> Response:
    """Post/redirect/get, problems included: every page in the history is a plain GET,
    so Back and Reload never resubmit a form."""
    if result.problem is None:
        return redirect_to(flow_page_url(_request(), result.flow.id), 303)
    arguments: dict[str, str | int] = {"notice": result.problem.value}
    if result.detail is not None:
        arguments["detail"] = result.detail
    return redirect_to(url_for("pages.show", flow_id=result.flow.id, **arguments), 303)


def _notice(http: Request) -> Problem | None:
    """The problem named in the page's query, if it is one we know (anything else: none).

    Looked up rather than tried: the usual page has no notice, and ``Problem("")`` would
    raise (and build) a ValueError on every sign-in; a page without a query parses none."""
    if not http.query_string:
        return None
    return _PROBLEMS.get(http.args.get("notice", ""))


def _status_of(problem: Problem) -> int:
    if problem is Problem.LINK_UNAVAILABLE:
        return 503
    if problem in RATE_PROBLEMS:
        return 429
    return 400


def _render(
    found: Services, http: Request, flow: Flow, error: str | None = None, status: int = 200
) -> Page:
    return render_flow_page(found, http, flow, flow_page_url(http, flow.id), error, status)
