"""The two wire dialects of live Link: what each call sends and how each answer is read.

Pure functions of data, no I/O: http.py sends the requests and owns retries and logging.
Every answer is checked for shape, so Link's surprises become ``LinkError``, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from oidc_link.config import LiveLinkSettings
from oidc_link.link import (
    LinkError,
    LinkErrorKind,
    LinkUser,
    LookupResult,
    VerificationStarted,
)

# Stripe asks callers to name the surface a session comes from; this one is ours.
REQUEST_SURFACE = "web_oidc_link"
LOCALE = "en-US"

# A marker for a body that is not JSON at all (as opposed to JSON ``null``).
NOT_JSON: Any = object()


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request, described as data so the dialects stay free of ``requests``."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WireAnswer:
    status: int
    body: Any  # parsed JSON, or NOT_JSON


class Dialect(Protocol):
    def lookup_request(self, email: str) -> WireRequest: ...

    def lookup_answer(self, answer: WireAnswer) -> LookupResult: ...

    def start_request(self, email: str, client_secret: str) -> WireRequest: ...

    def start_answer(self, answer: WireAnswer, client_secret: str) -> VerificationStarted: ...

    def authenticate_request(self, email: str, client_secret: str, code: str) -> WireRequest: ...

    def authenticate_answer(self, answer: WireAnswer) -> LinkUser: ...


def dialect_for(settings: LiveLinkSettings) -> Dialect:
    if settings.dialect == "stripe":
        return StripeDialect(settings)
    return LoginWithLinkDialect(settings)


def bad(detail: str) -> LinkError:
    return LinkError(LinkErrorKind.BAD_RESPONSE, detail)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def status_error(status: int) -> LinkError | None:
    """The errors every dialect reads from the status alone."""
    if status >= 500:
        return LinkError(LinkErrorKind.UNAVAILABLE, f"HTTP {status}")
    if status in (401, 403):
        # Our publishable key was refused: an operator must fix the configuration, retrying
        # cannot help. Reported as a bad response (the integration is broken, Link is not down).
        return bad(f"publishable key rejected (HTTP {status})")
    return None


def json_object(answer: WireAnswer) -> dict[str, Any]:
    if not isinstance(answer.body, dict):
        raise bad(f"expected a JSON object (HTTP {answer.status})")
    return answer.body


def text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise bad(f"{key} missing or not a string")
    return value


def optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"{key} is not a string")
    return value


def profile_text(body: Mapping[str, Any], key: str) -> str | None:
    """A profile field as Link gave it, or None when absent, empty or not a string."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        return None
    return value


class LoginWithLinkDialect:
    """The public "Login with Link" API (``/api/...``), the default dialect."""

    def __init__(self, settings: LiveLinkSettings) -> None:
        self._key = settings.publishable_key
        self._form = settings.body_encoding == "form"
        self._code_field = settings.code_field

    def _post(self, path: str, body: dict[str, str]) -> WireRequest:
        if self._form:
            return WireRequest("POST", path, form=body)
        return WireRequest("POST", path, json=body)

    def lookup_request(self, email: str) -> WireRequest:
        # A GET with the email in the query string, as the API defines; http.py keeps the
        # URL out of the logs.
        query = {"email": normalise_email(email), "STRIPE_PUBLIC_KEY": self._key}
        return WireRequest("GET", "/api/lookup-email", query=query)

    def lookup_answer(self, answer: WireAnswer) -> LookupResult:
        self._raise_for_status(answer)
        body = json_object(answer)
        exists = body.get("userExistsOnLink")
        if not isinstance(exists, bool):
            raise bad("userExistsOnLink missing or not a boolean")
        if not exists:
            return LookupResult(exists=False)
        return LookupResult(
            exists=True,
            client_secret=text(body, "client_secret"),
            redacted_phone=text(body, "redacted_phone_number"),
        )

    def start_request(self, email: str, client_secret: str) -> WireRequest:
        body = {"client_secret": client_secret, "email": normalise_email(email)}
        return self._post("/api/start_verification", body)

    def start_answer(self, answer: WireAnswer, client_secret: str) -> VerificationStarted:
        self._raise_for_status(answer, read_message=True)
        body = json_object(answer)
        result = body.get("result", "success")
        if result != "success":
            raise self._message_error(body, fallback=bad(f"start_verification result {result!r}"))
        # The docs only promise "the redacted phone number again"; the lookup's is the
        # fallback (the interaction keeps it), so an absent one is not an error.
        phone = optional_text(body, "redacted_phone_number") or ""
        # This API is not documented to rotate the secret; take a new one if it ever does.
        new_secret = optional_text(body, "client_secret") or client_secret
        return VerificationStarted(redacted_phone=phone, client_secret=new_secret)

    def authenticate_request(self, email: str, client_secret: str, code: str) -> WireRequest:
        body = {
            "client_secret": client_secret,
            "email": normalise_email(email),
            self._code_field: code,
        }
        return self._post("/api/authenticate", body)

    def authenticate_answer(self, answer: WireAnswer) -> LinkUser:
        self._raise_for_status(answer, read_message=True)
        body = json_object(answer)
        success = body.get("authenticationSuccessful")
        if success is False:
            raise self._message_error(body, fallback=LinkError(LinkErrorKind.INVALID_CODE))
        if success is not True:
            raise bad("authenticationSuccessful missing or not a boolean")
        user = body.get("user")
        if not isinstance(user, dict):
            raise bad("user missing or not an object")
        # The name and the city are the profile's, never needed to sign in: a strange one
        # is dropped rather than failing the sign-in. ``fullName`` stays one name (OIDC Core
        # §5.1 ``name``): a full name is never split into given and family names.
        return LinkUser(
            email=normalise_email(text(user, "email")),
            name=profile_text(user, "fullName"),
            city=profile_text(user, "city"),
        )

    def _raise_for_status(self, answer: WireAnswer, *, read_message: bool = False) -> None:
        error = status_error(answer.status)
        if error is not None:
            raise error
        if answer.status == 429:
            raise LinkError(LinkErrorKind.RATE_LIMITED, "HTTP 429")
        if 200 <= answer.status < 300:
            return
        # A 4xx that explains itself (a failed authentication, an expired session) is read
        # like a 200 with the same body; anything else is a status we do not understand.
        explained = isinstance(answer.body, dict) and (
            "errorMessage" in answer.body or "authenticationSuccessful" in answer.body
        )
        if read_message and 400 <= answer.status < 500 and explained:
            return
        raise bad(f"unexpected HTTP {answer.status}")

    def _message_error(self, body: Mapping[str, Any], fallback: LinkError) -> LinkError:
        """Read the kind from ``errorMessage``: the API has no error codes, only text."""
        message = body.get("errorMessage")
        if not isinstance(message, str):
            return fallback
        lowered = message.lower()
        if "expire" in lowered:
            return LinkError(LinkErrorKind.CODE_EXPIRED)
        if "attempt" in lowered or "too many" in lowered:
            return LinkError(LinkErrorKind.TOO_MANY_ATTEMPTS)
        return fallback


# Stripe's error codes and what they mean for the sign-in (any status).
STRIPE_ERROR_CODES = {
    "consumer_verification_code_invalid": LinkErrorKind.INVALID_CODE,
    "consumer_verification_expired": LinkErrorKind.CODE_EXPIRED,
    "consumer_session_expired": LinkErrorKind.CODE_EXPIRED,
    "consumer_verification_max_attempts_exceeded": LinkErrorKind.TOO_MANY_ATTEMPTS,
}
# The state of an SMS verification session after confirm_verification, when not VERIFIED.
STRIPE_UNVERIFIED_STATES = {
    "FAILED": LinkErrorKind.INVALID_CODE,
    "EXPIRED": LinkErrorKind.CODE_EXPIRED,
    "CANCELED": LinkErrorKind.CODE_EXPIRED,
}


class StripeDialect:
    """Stripe's consumer-session API (``/v1/consumers/sessions/...``), form-encoded."""

    def __init__(self, settings: LiveLinkSettings) -> None:
        self._headers = {"Authorization": f"Bearer {settings.publishable_key}"}

    def _post(self, path: str, form: dict[str, str]) -> WireRequest:
        form = {**form, "request_surface": REQUEST_SURFACE}
        return WireRequest(
            "POST", f"/v1/consumers/sessions/{path}", form=form, headers=self._headers
        )

    def lookup_request(self, email: str) -> WireRequest:
        return self._post("lookup", {"email_address": normalise_email(email)})

    def lookup_answer(self, answer: WireAnswer) -> LookupResult:
        body = self._success_body(answer)
        exists = body.get("exists")
        if not isinstance(exists, bool):
            raise bad("exists missing or not a boolean")
        if not exists:
            return LookupResult(exists=False)
        session = self._consumer_session(body)
        return LookupResult(
            exists=True,
            client_secret=text(session, "client_secret"),
            redacted_phone=text(session, "redacted_phone_number"),
        )

    def start_request(self, email: str, client_secret: str) -> WireRequest:
        form = {
            "credentials[consumer_session_client_secret]": client_secret,
            "type": "SMS",
            "locale": LOCALE,
        }
        return self._post("start_verification", form)

    def start_answer(self, answer: WireAnswer, client_secret: str) -> VerificationStarted:
        session = self._consumer_session(self._success_body(answer))
        # Stripe may rotate the secret on any answer; the newest one must be used next.
        return VerificationStarted(
            redacted_phone=optional_text(session, "redacted_phone_number") or "",
            client_secret=optional_text(session, "client_secret") or client_secret,
        )

    def authenticate_request(self, email: str, client_secret: str, code: str) -> WireRequest:
        form = {
            "credentials[consumer_session_client_secret]": client_secret,
            "type": "SMS",
            "code": code,
        }
        return self._post("confirm_verification", form)

    def authenticate_answer(self, answer: WireAnswer) -> LinkUser:
        session = self._consumer_session(self._success_body(answer))
        verifications = session.get("verification_sessions")
        if not isinstance(verifications, list):
            raise bad("verification_sessions missing or not a list")
        states = [
            item.get("state")
            for item in verifications
            if isinstance(item, dict) and item.get("type") == "SMS"
        ]
        if "VERIFIED" in states:
            # Stripe tells us no name nor city; the email is the one the session was opened for.
            return LinkUser(email=normalise_email(text(session, "email_address")))
        for state in states:
            if state in STRIPE_UNVERIFIED_STATES:
                raise LinkError(STRIPE_UNVERIFIED_STATES[state], f"verification {state}")
        raise bad("no verified SMS verification session")

    def _success_body(self, answer: WireAnswer) -> dict[str, Any]:
        error = status_error(answer.status)
        if error is not None:
            raise error
        if 200 <= answer.status < 300:
            return json_object(answer)
        code = self._error_code(answer.body)
        if code in STRIPE_ERROR_CODES and answer.status in (400, 429):
            raise LinkError(STRIPE_ERROR_CODES[code], code)
        if answer.status == 429:
            raise LinkError(LinkErrorKind.RATE_LIMITED, "HTTP 429")
        raise bad(f"unexpected HTTP {answer.status} ({code or 'no error code'})")

    @staticmethod
    def _error_code(body: Any) -> str | None:
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        return code if isinstance(code, str) else None

    @staticmethod
    def _consumer_session(body: Mapping[str, Any]) -> dict[str, Any]:
        session = body.get("consumer_session")
        if not isinstance(session, dict):
            raise bad("consumer_session missing or not an object")
        return session
