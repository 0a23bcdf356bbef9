"""What we keep in Redis, as dataclasses that turn into JSON records and back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Self


class Record:
    """JSON (de)serialisation shared by every stored dataclass."""

    def to_record(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_record(cls, raw: str | bytes) -> Self:
        return cls._from_dict(json.loads(raw))

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True)
class Identity(Record):
    """A person Link has just verified: the subject of the tokens we issue."""

    email: str
    name: str | None
    auth_time: int
    # RFC 8176: a one-time code sent by SMS is "otp" + "sms".
    amr: tuple[str, ...] = ("otp", "sms")

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**{**data, "amr": tuple(data.get("amr", ()))})


class FlowStep:
    EMAIL = "email"
    CODE = "code"
    NOT_ON_LINK = "not_on_link"
    # Too many wrong codes: nothing left to do but go back to the site.
    LOCKED = "locked"
    # Signed in (``Flow.identity``); a third-party client waits for Allow or Deny.
    CONSENT = "consent"


@dataclass(frozen=True)
class AccountLinkTarget(Record):
    """What a flow started by an Account Link verifies for: which account, of which owner,
    and where the browser returns. Set only by a link's visit, never from request input."""

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

    def advance(self, **changes: Any) -> Flow:
        return replace(self, **changes)

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        identity = data.get("identity")
        target = data.get("account_link")
        return cls(
            **{
                **data,
                "identity": Identity._from_dict(identity) if identity else None,
                "account_link": AccountLinkTarget._from_dict(target) if target else None,
            }
        )


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
    # Started since an https issuer names its cookies "__Host-..." (web/browser.py): such a
    # session is never taken from the old cookie name, which a sibling subdomain can plant.
    # Sessions stored before lack it and move to the new name once.
    host_cookie: bool = False
    # What the browser said it was (a short description of its User-Agent), for the
    # account page's list of signed-in devices.
    device: str | None = None
    # Sectors (config ``sector``, else the client id) the person signed out of on an
    # account page while this session stays for other apps: it no longer signs them in to
    # those sectors' clients without a new SMS.
    left_sectors: tuple[str, ...] = ()

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(
            **{
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

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**{**data, "identity": Identity._from_dict(data["identity"])})


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
        return cls(**{**data, "identity": Identity._from_dict(data["identity"])})


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
        return cls(**{**data, "identity": Identity._from_dict(data["identity"])})


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
