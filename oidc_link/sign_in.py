"""Finishing a sign-in (DESIGN.md §4 step 5): the one place that decides, in order, an
Account Link's binding, the SSO session, consent and the code, for a verified SMS code, an
SSO session that answers /authorize, and Allow on the consent page. Knows no web framework.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from oidc_link.errors import FlowNotFoundError
from oidc_link.interaction import Interaction
from oidc_link.models import AccountLinkTarget, Flow, Identity, SsoSession
from oidc_link.oauth import Provider
from oidc_link.oauth.messages import ProtocolResponse
from oidc_link.platform.accounts import Accounts, Binding
from oidc_link.sessions import Sessions
from oidc_link.store import Store, Writes
from oidc_link.store.accounts import AccountRead

log = logging.getLogger(__name__)


class Via(enum.Enum):
    """How the person proved who they are, which decides what finishing writes."""

    # A code just verified by SMS: a new SSO session starts, in one batch with the code.
    CODE = "code"
    # The browser's SSO session answers /authorize: no new session.
    SESSION = "session"
    # Allow on the consent page: the consent is remembered, then the code issued.
    CONSENT = "consent"


class Next(enum.Enum):
    """Where the browser goes when the sign-in is finished."""

    # To ``answer``'s location: the RP (a code, or an error), or an Account Link's return_url.
    REDIRECT = "redirect"
    # To the consent page: ``flow``, a new flow at the consent step.
    CONSENT = "consent"
    # To ``flow``'s email page, saying the verified email is another account's here.
    EMAIL_TAKEN = "email_taken"


@dataclass(frozen=True)
class SignInRequest:
    """What the sign-in was for: a client's authorization request, or an Account Link's
    account (onboarding or an update: no SSO session, no code)."""

    client_id: str
    parameters: dict[str, str]
    account_link: AccountLinkTarget | None = None
    # Via.SESSION: the request as /authorize validated it a moment ago (ValidAuthorization's
    # ``grant``), so that the code is issued without validating it again.
    validated: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, flow: Flow) -> SignInRequest:
        return cls(flow.client_id, flow.authorization, flow.account_link)


@dataclass(frozen=True)
class Finished:
    next: Next
    # REDIRECT: where to; the RP's answer keeps its status and headers (response_mode).
    location: str | None = None
    answer: ProtocolResponse | None = None
    # CONSENT or EMAIL_TAKEN: the new flow whose page comes next.
    flow: Flow | None = None
    # Via.CODE: the secret of the SSO session this sign-in started, for the cookie.
    session_secret: str | None = None


class SignIn:
    def __init__(
        self,
        store: Store,
        sessions: Sessions,
        interaction: Interaction,
        provider: Provider,
        accounts: Accounts,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._interaction = interaction
        self._provider = provider
        self._accounts = accounts

    def complete(
        self,
        request: SignInRequest,
        identity: Identity,
        via: Via,
        *,
        browser: str | None,
        session: SsoSession | None = None,
        device: str | None = None,
        writes: Writes | None = None,
        account_read: AccountRead | None = None,
    ) -> Finished:
        """Finish ``request`` for ``identity``.

        ``browser`` binds a consent (or email) flow this may start; ``session`` is the
        browser's SSO session (Via.SESSION, Via.CONSENT); ``device`` names the browser in
        a session Via.CODE starts; ``writes``, Via.CODE, the batch the session and the code
        are queued into (the caller sends it with the flow's end), else a batch of its own;
        ``account_read``, Via.CODE, the person's account as ``read_ahead`` read it.
        Via.SESSION, ``writes`` is the batch that holds the session's renewal (not atomic):
        the account is read in its round trip, then the code stored in a batch of its own.
        """
        if request.account_link is not None:
            return self._bind_account(request, request.account_link, identity, browser)
        if via is Via.SESSION and writes is not None:
            return self._from_session(request, identity, browser, session, writes)
        if via is Via.CONSENT:
            self._provider.remember_consent(request.client_id, request.parameters, identity)
            # The code carries the sid of the session this very sign-in started (or came
            # from), not of another person's session in the same browser.
            same_sign_in = session is not None and session.identity == identity
            return self._issue(request, identity, session if same_sign_in else None)
        # A new session starts before the code is issued, so the code carries its sid; both
        # are stored in one batch (one Redis round trip): the caller's, else one sent as the
        # block ends.
        if via is Via.CODE and writes is None:
            with self._store.writes() as batch:
                return self.complete(
                    request,
                    identity,
                    via,
                    browser=browser,
                    session=session,
                    device=device,
                    writes=batch,
                    account_read=account_read,
                )
        secret = None
        if via is Via.CODE:
            secret, session = self._sessions.begin(identity, device, writes)
        consent = self._provider.consent_request(request.client_id, request.parameters, identity)
        if consent.needed:
            # A third-party client not (yet, or no longer) approved, or prompt=consent
            # (OIDC Core §3.1.2.4): a new flow at the consent step, bound to this browser.
            flow = self._interaction.start(
                request.client_id, request.parameters, _bound(browser), identity
            )
            return Finished(Next.CONSENT, flow=flow, session_secret=secret)
        return self._issue(request, identity, session, writes, secret, account_read)

    def _from_session(
        self,
        request: SignInRequest,
        identity: Identity,
        browser: str | None,
        session: SsoSession | None,
        renewal: Writes,
    ) -> Finished:
        """Single sign-on with a code: the session's renewal and the account's read share
        one round trip (the read needs the session's email; the code's writes need the
        read), then the code's batch is the second."""
        consent = self._provider.consent_request(request.client_id, request.parameters, identity)
        if consent.needed:
            flow = self._interaction.start(
                request.client_id, request.parameters, _bound(browser), identity
            )
            return Finished(Next.CONSENT, flow=flow)
        ahead = self.read_ahead(request.client_id, identity.email)
        if ahead is not None:
            renewal.ride(ahead)
        renewal.send()
        answer = self._provider.approve(
            request.parameters, identity, session, account_read=ahead, validated=request.validated
        )
        return Finished(Next.REDIRECT, answer.location, answer)

    def read_ahead(self, client_id: str, email: str) -> AccountRead | None:
        """The first read of issuing ``client_id`` a code for ``email`` (the account at the
        client's owner), for the code step to send before Link answers; None for a client
        not (or no longer) registered."""
        client = self._provider.query_client(client_id)
        if client is None:
            return None
        return self._accounts.read_ahead(client.settings.subject_sector, email)

    def _issue(
        self,
        request: SignInRequest,
        identity: Identity,
        session: SsoSession | None,
        writes: Writes | None = None,
        secret: str | None = None,
        account_read: AccountRead | None = None,
    ) -> Finished:
        answer = self._provider.approve(request.parameters, identity, session, writes, account_read)
        return Finished(Next.REDIRECT, answer.location, answer, session_secret=secret)

    def _bind_account(
        self,
        request: SignInRequest,
        target: AccountLinkTarget,
        identity: Identity,
        browser: str | None,
    ) -> Finished:
        """Bind the verified email to the Account Link's account, then to its return_url;
        an email that is another account's here starts the sign-in over at the email step."""
        outcome = self._accounts.bind(
            target.owner, target.account_id, identity.email, identity.name
        )
        if outcome is Binding.EMAIL_TAKEN:
            again = self._interaction.start(
                request.client_id, request.parameters, _bound(browser), account_link=target
            )
            return Finished(Next.EMAIL_TAKEN, flow=again)
        if outcome is Binding.ACCOUNT_GONE:
            log.info("Account of an Account Link flow was deleted meanwhile")
        return Finished(Next.REDIRECT, target.return_url)


def _bound(browser: str | None) -> str:
    """The browser a new flow is bound to; the pages have checked the binding cookie before
    a sign-in can finish, so a missing one is never the case."""
    if browser is None:
        raise FlowNotFoundError()
    return browser
