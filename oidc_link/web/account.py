"""Account Link and Login Link visits, and the hosted account page.

A visit swaps the Account or Login Link's token for a cookie and redirects to a clean URL,
so the token leaves the address bar at once and never reaches a Referer (every answer is
``no-referrer`` and ``no-store``). Onboarding and updates reuse the sign-in pages; a Login
Link opens the account page: the verified email, name, platform, signed-in devices,
consents, sign-out. A platform mints Login Links at will, so the page acts only within the
platform's sector, and on the person's sessions only once the account's email is verified.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    Response,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from oidc_link.ids import same
from oidc_link.models import AccountLinkTarget, Flow
from oidc_link.platform.account_links import LOGIN, AccountLinkGrant
from oidc_link.platform.account_sessions import AccountSession
from oidc_link.platform.accounts import Account
from oidc_link.platform.events import SESSIONS_REVOKED
from oidc_link.web.browser import bind_browser, browser_id_or_new
from oidc_link.web.context import services
from oidc_link.web.errors import error_page
from oidc_link.web.languages import page_language, translatable

log = logging.getLogger(__name__)

ACCOUNT_COOKIE = "oidc_link_account"
ACCOUNT_PATH = "/account"
NOTICES = {
    "signed_out_everywhere": translatable(
        "You're signed out of %(apps)s on every device, and they must ask you to sign in "
        "again. Other apps you use with Link were not touched."
    ),
    "consent_revoked": translatable("Access removed. The app will ask again if you use it."),
}

account_pages = Blueprint("account_pages", __name__)


# --- The visit. ---


# ``link_id`` is the Account or Login Link's id. The rule and the view's name stay as they
# were: request logs name a route by its rule, the latency metric by its endpoint name.
@account_pages.get("/links/<link_id>/<token>")
def visit(link_id: str, token: str) -> Response | tuple[str, int]:
    context = services()
    outcome = context.account_links.visit(link_id, token)
    grant = outcome.grant
    if grant is None:
        # Used, expired or garbled: the platform's refresh_url mints a fresh one, and we
        # don't say which of the three it was.
        if outcome.refresh_url:
            return redirect(outcome.refresh_url, 303)
        language = page_language()
        return error_page(
            language.gettext("This link can't be used"),
            language.gettext(
                "Links work once and for a short time. Go back to the site that sent you and "
                "ask for a new one."
            ),
            404,
        )
    if grant.kind == LOGIN:
        secret, _ = context.account_sessions.start(grant.account_id, grant.owner, grant.client_id)
        response = redirect(url_for("account_pages.show"), 303)
        response.set_cookie(
            ACCOUNT_COOKIE,
            secret,
            max_age=context.account_sessions.lifetime,
            httponly=True,
            secure=context.settings.secure_cookies,
            samesite="Lax",
            path=ACCOUNT_PATH,
        )
        return response
    account = context.accounts.find(grant.owner, grant.account_id)
    if account is None:
        return _refresh(grant)
    return _start_verification(grant.kind, grant, account, grant.return_url or "")


def _refresh(grant: AccountLinkGrant) -> Response:
    return redirect(grant.refresh_url or "/", 303)


def _start_verification(
    kind: str, grant: AccountLinkGrant | AccountSession, account: Account, return_url: str
) -> Response:
    """Onboarding or an update: the sign-in pages, in a flow that ends in the account."""
    browser = browser_id_or_new()
    target = AccountLinkTarget(kind, account.id, account.owner, return_url)
    prefill = {"login_hint": account.email} if account.email else {}
    flow = services().interaction.start(grant.client_id, prefill, browser, account_link=target)
    response = redirect(url_for("pages.show", flow_id=flow.id), 303)
    bind_browser(response, browser, secure=services().settings.secure_cookies)
    return response


# --- What the sign-in pages call for Account Link flows. ---


def is_account_link_flow(flow: Flow) -> bool:
    """A flow an Account Link's visit started (the target is set only there, never from a
    request)."""
    return flow.account_link is not None


def leave_account_link_flow(flow: Flow) -> str:
    """Leaving an Account Link flow goes to return_url: it proves nothing, the platform
    checks."""
    target = flow.account_link
    assert target is not None
    return target.return_url


# --- The account page. ---


def _session() -> tuple[str | None, AccountSession | None]:
    secret = request.cookies.get(ACCOUNT_COOKIE)
    return secret, services().account_sessions.find(secret)


def _expired_page() -> tuple[str, int]:
    language = page_language()
    return error_page(
        language.gettext("Your account page has closed"),
        language.gettext(
            "For your safety it stays open only for a short time. Go back to the site you "
            "came from and open your account from there again."
        ),
        401,
    )


def _checked_form(session: AccountSession) -> None:
    if not same(request.form.get("csrf_token", ""), session.csrf_token):
        abort(400)


@account_pages.get(ACCOUNT_PATH)
def show() -> tuple[str, int]:
    _, session = _session()
    if session is None:
        return _expired_page()
    context = services()
    account = context.accounts.find(session.owner, session.account_id)
    if account is None:
        return _expired_page()
    client = context.settings.client(session.client_id)
    platform = client.display_name if client else session.client_id
    language = page_language()
    app_names = language.listing(_sector_apps(account.owner))
    devices = (
        context.logout.sector_sessions(account.email, account.owner)
        if _verified(account) and account.email
        else []
    )
    leaving = sum(1 for found in devices if found.shared)
    consents = _consents(account)
    notice_text = NOTICES.get(request.args.get("notice", ""))
    notice = language.gettext(notice_text, apps=app_names) if notice_text else None
    page = render_template(
        "account.html",
        account=account,
        verified=_verified(account),
        platform=platform,
        app_names=app_names,
        devices=devices,
        ending=len(devices) - leaving,
        leaving=leaving,
        consents=consents,
        notice=notice,
        csrf_token=session.csrf_token,
        now=context.clock.now(),
    )
    return page, 200


def _verified(account: Account) -> bool:
    """The person proved the email with an SMS code through an Account Link (or signed in
    with it): only then may the page act on their sessions, which are theirs, not the
    platform's (a platform can give any email in ``POST /v1/accounts``)."""
    return bool(account.email and account.details_submitted)


def _sector_apps(sector: str) -> list[str]:
    """The names of the platform's clients: those sharing its sector (``sub`` values)."""
    clients = services().settings.clients
    return [client.display_name for client in clients if client.subject_sector == sector]


def _consents(account: Account) -> list[tuple[str, str, tuple[str, ...]]]:
    """(client id, client name, scopes) of every third-party client the person allowed."""
    provider = services().provider
    found = []
    for client in services().settings.clients:
        if client.subject_sector != account.owner or not client.third_party:
            continue
        scopes = provider.consents.granted(account.id, client.client_id)
        if scopes:
            found.append((client.client_id, client.display_name, tuple(sorted(scopes))))
    return found


@account_pages.post(ACCOUNT_PATH + "/sign-out-everywhere")
def sign_out_everywhere() -> Response | tuple[str, int]:
    """Sign the person out of the platform's apps (its sector) on every device: the SSO
    sessions only those apps used end, shared ones stop signing in there, and every token
    family issued for the account (its ``sub``, which is the sector's) is revoked."""
    _, session = _session()
    if session is None:
        return _expired_page()
    _checked_form(session)
    context = services()
    account = context.accounts.find(session.owner, session.account_id)
    if account is None:
        return _expired_page()
    if not _verified(account) or account.email is None:
        language = page_language()
        return error_page(
            language.gettext("Verify your email first"),
            language.gettext(
                "Signing out on every device works once you have confirmed your email with "
                "Link on this page (Update your details). Nothing was changed."
            ),
            403,
            next_url=url_for("account_pages.show"),
            next_label=language.gettext("Back to your account"),
        )
    done = context.logout.end_in_sector(account.email, account.owner)
    # The platform hears of it (account.sessions.revoked) with the take of the families.
    told = context.events.new(SESSIONS_REVOKED, account.owner, account.id, account.shown())
    revoked = services().tokens.revoke_account(account.id, told)
    log.info(
        "Account page sign-out: %d session(s) ended, %d left to other apps, "
        "%d token family(ies) revoked",
        done.ended,
        done.left,
        revoked,
    )
    return redirect(url_for("account_pages.show", notice="signed_out_everywhere"), 303)


@account_pages.post(ACCOUNT_PATH + "/consents/<client_id>/revoke")
def revoke_consent(client_id: str) -> Response | tuple[str, int]:
    _, session = _session()
    if session is None:
        return _expired_page()
    _checked_form(session)
    client = services().settings.client(client_id)
    if client is None or client.subject_sector != session.owner:
        # Consents are kept per (sub, client) and the sub is the sector's: another
        # sector's client has nothing here to remove.
        language = page_language()
        return error_page(
            language.gettext("There is no such app here"),
            language.gettext("This app is not one of the platform's. Nothing was changed."),
            404,
            next_url=url_for("account_pages.show"),
            next_label=language.gettext("Back to your account"),
        )
    services().consents.revoke(session.account_id, client_id)
    return redirect(url_for("account_pages.show", notice="consent_revoked"), 303)


@account_pages.post(ACCOUNT_PATH + "/update")
def start_update() -> Response | tuple[str, int]:
    _, session = _session()
    if session is None:
        return _expired_page()
    _checked_form(session)
    account = services().accounts.find(session.owner, session.account_id)
    if account is None:
        return _expired_page()
    return _start_verification("account_update", session, account, url_for("account_pages.show"))


@account_pages.post(ACCOUNT_PATH + "/sign-out")
def sign_out() -> Response:
    secret, session = _session()
    if session is not None:
        _checked_form(session)
    services().account_sessions.end(secret)
    language = page_language()
    page, status = error_page(
        language.gettext("You've left your account page"),
        language.gettext("To open it again, go back to the site you came from."),
        200,
    )
    response = make_response(page, status)
    response.delete_cookie(
        ACCOUNT_COOKIE,
        path=ACCOUNT_PATH,
        secure=services().settings.secure_cookies,
        httponly=True,
        samesite="Lax",
    )
    return response
