"""What we keep in Redis, as dataclasses that turn into JSON records and back; and the
steps a sign-in flow may move between (FlowStep, TRANSITIONS), which Flow.advance enforces.

A flow's steps (web/pages.py shows each as a page)::

    start ──────► EMAIL ↺ refused: a bad email, a limit, Link down
      │            │  │
      │            │  └─────────► NOT_ON_LINK      Link has no such email
      │  code sent ▼
      │           CODE ↺ resend; a wrong or expired code
      │            │  │
      │            │  └─────────► LOCKED           too many wrong codes
      │ right code ▼
      │          ended            (then a new flow at CONSENT, if the client asks)
      └─────────► CONSENT ──────► ended            Allow (SSO sign-ins start here)

    any step but LOCKED ──► EMAIL    "Use another email", an email typed again
    any step ──► ended               cancel: back to the site, or Deny

As a table (tests/test_flow_steps.py reads this one against TRANSITIONS)::

    email       -> email | code | not_on_link | ended
    code        -> email | code | locked | ended
    not_on_link -> email | ended
    locked      -> ended
    consent     -> email | ended
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

from oidc_link.errors import FlowStepError
from oidc_link.records import Record


@dataclass(frozen=True)
class Identity(Record):
    """A person Link has just verified: the subject of the tokens we issue."""

    email: str
    name: str | None
    auth_time: int
    # RFC 8176: a one-time code sent by SMS is "otp" + "sms".
    amr: tuple[str, ...] = ("otp", "sms")
    # The Link account's city (the ``address`` claim's locality); None in records from
    # before it was carried, and for a user Link tells none.
    city: str | None = None

    omitted_when_empty = frozenset({"city"})

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        # Inside every record that holds it: fields a later version adds are dropped here.
        return cls._build({**cls._known(data), "amr": tuple(data.get("amr", ()))})


class FlowStep(enum.StrEnum):
    """Where a flow is; stored as its value, so records keep the plain strings."""

    EMAIL = "email"
    CODE = "code"
    NOT_ON_LINK = "not_on_link"
    # Too many wrong codes: nothing left to do but go back to the site.
    LOCKED = "locked"
    # Signed in (``Flow.identity``); a third-party client waits for Allow or Deny.
    CONSENT = "consent"
    # Never stored: the flow was taken from the store (signed in, allowed or cancelled) and
    # only its FinishedFlow stays.
    ENDED = "ended"


# The moves a flow may make, from each stored step (the module docstring draws them).
TRANSITIONS: Mapping[str, frozenset[FlowStep]] = {
    FlowStep.EMAIL: frozenset(
        {FlowStep.EMAIL, FlowStep.CODE, FlowStep.NOT_ON_LINK, FlowStep.ENDED}
    ),
    FlowStep.CODE: frozenset({FlowStep.EMAIL, FlowStep.CODE, FlowStep.LOCKED, FlowStep.ENDED}),
    FlowStep.NOT_ON_LINK: frozenset({FlowStep.EMAIL, FlowStep.ENDED}),
    FlowStep.LOCKED: frozenset({FlowStep.ENDED}),
    FlowStep.CONSENT: frozenset({FlowStep.EMAIL, FlowStep.ENDED}),
}


@dataclass(frozen=True)
class AccountLinkTarget(Record):
    """What a flow started by an Account Link verifies for: which account, of which owner,
    and where the browser returns. Set only by an Account Link's visit, never from request input."""

    kind: str  # account_onboarding | account_update
    account_id: str
    owner: str
    return_url: str


@dataclass(frozen=True)
class Flow(Record):
    """One pending sign-in: the validated authorization request and how far the user got.

    ``link_client_secret`` is Link's session secret: it stays here, never in a page or URL.
    """

    id: str
    browser_digest: str
    client_id: str
    authorization: dict[str, str]
    csrf_token: str
    created_at: int
    expires_at: int
    step: str = FlowStep.EMAIL
    email: str | None = None
    redacted_phone: str | None = None
    link_client_secret: str | None = None
    code_attempts: int = 0
    sms_sent: int = 0
    sms_sent_at: int = 0
    # Who signed in, at the consent step only.
    identity: Identity | None = None
    # Set when the flow verifies an identity for an account (Account Links), not for an RP.
    account_link: AccountLinkTarget | None = None
    # The pages' language the request's ui_locales chose (OIDC Core §3.1.2.1), for every
    # page of this sign-in (sign_in.py's next flows start from the same parameters, so it
    # stays); None: the browser's Accept-Language, then the default, decide.
    locale: str | None = None

    # Added after flows were first stored: a flow without a locale is written as before.
    omitted_when_empty = frozenset({"locale"})

    def advance(self, **changes: Any) -> Flow:
        """This flow with ``changes``; a new ``step`` must be a move TRANSITIONS allows.

        A copy of the fields as they are, with ``changes`` over them: what ``replace``
        gives (tests/test_flow_advance.py compares them), without its pass over every
        field and ``__init__`` (some 15 µs a copy, two copies an email step)."""
        if "step" in changes:
            if changes["step"] == FlowStep.ENDED:
                raise ValueError("a flow ends by being taken from the store, not by a step")
            self.check_move(changes["step"])
        if not _FLOW_FIELDS.issuperset(changes):
            unknown = ", ".join(sorted(set(changes) - _FLOW_FIELDS))
            raise TypeError(f"Flow has no field {unknown}")
        copied = object.__new__(Flow)
        fields_of = copied.__dict__
        fields_of.update(self.__dict__)
        fields_of.update(changes)
        return copied

    def check_move(self, to: str) -> None:
        """Raise FlowStepError unless TRANSITIONS lets this flow move to ``to``."""
        if to not in TRANSITIONS.get(self.step, frozenset()):
            raise self._wrong_step()

    def check_at(self, step: str) -> None:
        """Raise FlowStepError unless this flow is at ``step``: the forms that act within
        one step (a code, a resend, Allow) are refused anywhere else."""
        if self.step != step:
            raise self._wrong_step()

    def _wrong_step(self) -> FlowStepError:
        # Nothing changes; the error page offers the flow's current step.
        return FlowStepError(
            self.client_id, self.authorization.get("redirect_uri"), flow_id=self.id
        )

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        identity = data.get("identity")
        target = data.get("account_link")
        return cls._build(
            {
                **data,
                "identity": Identity._from_dict(identity) if identity else None,
                "account_link": AccountLinkTarget._from_dict(target) if target else None,
            }
        )


# What ``Flow.advance`` may change: the dataclass's fields, as ``replace`` allows.
_FLOW_FIELDS = frozenset(item.name for item in fields(Flow))


@dataclass(frozen=True)
class SsoSession(Record):
    """A browser's sign-in, kept so the next authorization request needs no new SMS.

    Stored under the digest of the cookie value; ``sid`` is its public name.
    """

    sid: str
    identity: Identity
    created_at: int
    absolute_expiry: int
    idle_expiry: int
    # What the browser said it was (a short description of its User-Agent), for the
    # account page's list of signed-in devices.
    device: str | None = None
    # Sectors (config ``sector``, else the client id) the person signed out of on an
    # account page while this session stays for other apps: it no longer signs them in to
    # those sectors' clients without a new SMS.
    left_sectors: tuple[str, ...] = ()

    omitted_when_empty = frozenset({"left_sectors"})

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls._build(
            {
                **data,
                "identity": Identity._from_dict(data["identity"]),
                "left_sectors": tuple(data.get("left_sectors", ())),
            }
        )


@dataclass(frozen=True)
class PendingLogout(Record):
    """A logout request waiting for the user's answer on the confirmation page.

    Bound to the browser that was asked (like a Flow) and answered at most once; it holds
    only what was already validated: the client, the post-logout redirect and ``state``.
    """

    id: str
    browser_digest: str
    csrf_token: str
    expires_at: int
    client_id: str | None = None
    post_logout_redirect_uri: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class FinishedFlow(Record):
    """What stays of a flow after it ended, so a late request gets a page, not an error.

    ``sealed_redirect`` is the RP redirect (it carries the code), encrypted to the browser
    that finished the flow, so only that browser's double submit can land there again.
    """

    client_id: str
    redirect_uri: str | None
    sealed_redirect: str | None
    redirect_valid_until: int
    response_mode: str = "query"


@dataclass(frozen=True)
class AuthorizationCode(Record):
    """An issued code, stored under the digest of its value; redeemed at most once."""

    client_id: str
    redirect_uri: str | None
    scope: str
    subject: str
    identity: Identity
    expires_at: int
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    # The SSO session the code was issued in (``sid`` claim, back-channel logout).
    sid: str | None = None
    # The request's ``claims`` parameter (OIDC Core §5.5), as the JSON text it came in.
    claims: str | None = None
    # The token family the code's tokens will belong to, already bound to the account and
    # the session when the code was issued (oauth/tokens.py); None in a code an earlier
    # version issued, whose family is bound when it is redeemed.
    family_id: str | None = None

    omitted_when_empty = frozenset({"family_id"})

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls._build({**data, "identity": Identity._from_dict(data["identity"])})


@dataclass(frozen=True)
class AccessToken(Record):
    """An issued access token, stored under its digest; enough to answer /userinfo.

    ``family_id`` names the token family (one per redeemed code) that revocation acts on;
    records from before families existed have none and stand alone.
    """

    client_id: str
    subject: str
    scope: str
    identity: Identity
    expires_at: int
    family_id: str | None = None
    issued_at: int | None = None
    sid: str | None = None
    claims: str | None = None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls._build({**data, "identity": Identity._from_dict(data["identity"])})


@dataclass(frozen=True)
class RefreshToken(Record):
    """An issued refresh token, stored under its digest; rotated on every use.

    ``scope`` is what was originally granted: a refresh may narrow the access token's
    scope, but the next refresh token keeps the original one (RFC 6749 §6).
    """

    client_id: str
    subject: str
    scope: str
    identity: Identity
    family_id: str
    issued_at: int
    expires_at: int
    sid: str | None = None
    claims: str | None = None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls._build({**data, "identity": Identity._from_dict(data["identity"])})


@dataclass(frozen=True)
class SigningKey(Record):
    """One signing key of one algorithm's key ring.

    ``slot`` names its place in the rotation schedule (0 for the first key, else the time it
    was scheduled to sign from), so instances racing to create it agree on one key.
    ``sealed_private`` is the private key encrypted with the key-encryption key.
    """

    kid: str
    alg: str
    slot: int
    created_at: int
    signs_from: int
    sealed_private: str
    public_jwk: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PushedRequest(Record):
    """A pushed authorization request (RFC 9126), stored under the digest of its
    ``request_uri``: the validated parameters, used at most once at /authorize."""

    client_id: str
    parameters: dict[str, str]
    expires_at: int
