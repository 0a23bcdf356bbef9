"""The ``claims`` request parameter (OIDC Core §5.5): parsing it and answering what it asks.

Only reads the parameter; which claims are then released is claims.py's rule, and the
parameter's JSON text is what codes and tokens carry (models.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError

# The two members a claims request may have (OIDC Core §5.5); any other is ignored.
ID_TOKEN = "id_token"  # noqa: S105 - a member name, not a secret
USERINFO = "userinfo"


@dataclass(frozen=True)
class ClaimRequest:
    """One requested claim: ``null`` in the JSON, or an object (OIDC Core §5.5.1)."""

    essential: bool = False
    # ``value`` and ``values`` together: the claim is asked to have one of these.
    values: tuple[Any, ...] | None = None

    def allows(self, value: Any) -> bool:
        return self.values is None or value in self.values


@dataclass(frozen=True)
class ClaimsRequest:
    """The claims asked for in the ID token and at /userinfo; empty when none were."""

    id_token: Mapping[str, ClaimRequest] = field(default_factory=dict)
    userinfo: Mapping[str, ClaimRequest] = field(default_factory=dict)

    def names(self, member: str) -> frozenset[str]:
        return frozenset(self.id_token if member == ID_TOKEN else self.userinfo)

    @property
    def names_subject(self) -> bool:
        """Whether ``sub`` is asked for at all: only then is the user's subject needed."""
        return "sub" in self.id_token or "sub" in self.userinfo

    def allows_subject(self, subject: str) -> bool:
        """False when ``sub`` is asked for with a value that is not ``subject`` (§5.5.1:
        never answer for a different user)."""
        return all(
            member["sub"].allows(subject)
            for member in (self.id_token, self.userinfo)
            if "sub" in member
        )

    def allows_acr(self, acr: str) -> bool:
        """False when ``acr`` is asked for as essential with values we do not meet
        (§5.5.1.1). A voluntary request is answered with our ``acr``, whatever it asked."""
        return all(
            member["acr"].allows(acr)
            for member in (self.id_token, self.userinfo)
            if "acr" in member and member["acr"].essential
        )


def parse_claims_request(text: str | None) -> ClaimsRequest:
    """The ``claims`` parameter as JSON text; raises invalid_request when it is not a JSON
    object of the shape §5.5 defines. Unknown members and claims are kept or ignored
    later, never refused (§5.5: members not understood MUST be ignored)."""
    if text is None:
        return ClaimsRequest()
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise InvalidRequestError("'claims' must be a JSON object.") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("'claims' must be a JSON object.")
    return ClaimsRequest(
        id_token=_member(document, ID_TOKEN),
        userinfo=_member(document, USERINFO),
    )


def _member(document: dict[str, Any], name: str) -> dict[str, ClaimRequest]:
    member = document.get(name)
    if member is None:
        return {}
    if not isinstance(member, dict):
        raise InvalidRequestError(f"'claims.{name}' must be a JSON object.")
    return {claim: _claim(name, claim, request) for claim, request in member.items()}


def _claim(member: str, claim: str, request: Any) -> ClaimRequest:
    if request is None:
        return ClaimRequest()
    where = f"'claims.{member}.{claim}'"
    if not isinstance(request, dict):
        raise InvalidRequestError(f"{where} must be null or a JSON object.")
    essential = request.get("essential", False)
    if not isinstance(essential, bool):
        raise InvalidRequestError(f"{where}.essential must be true or false.")
    values: list[Any] | None = None
    if "value" in request:
        values = [request["value"]]
    if "values" in request:
        if not isinstance(request["values"], list):
            raise InvalidRequestError(f"{where}.values must be a JSON array.")
        values = (values or []) + request["values"]
    return ClaimRequest(essential, tuple(values) if values is not None else None)
