"""The shape every OAuth request must have before anything in it is believed: each parameter
once (RFC 6749 §3.1, §3.2) and at most one client authentication method (RFC 6749 §2.3).

Only checks; it answers nothing and reads no client registration.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError

# Body parameters that carry client credentials, by the method they belong to.
SECRET_PARAMETER = "client_secret"  # noqa: S105 - a parameter name, not a secret
ASSERTION_PARAMETERS = ("client_assertion", "client_assertion_type")


def repeated_parameter(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The first parameter name that occurs more than once, if any."""
    names = [name for name, _ in pairs]
    if len(set(names)) == len(names):
        return None  # the usual answer, found without a loop in Python
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def refuse_repeated_parameters(pairs: Iterable[tuple[str, str]]) -> None:
    """RFC 6749 §3.1 and §3.2: "parameters MUST NOT be included more than once"; §5.2 and
    §4.1.2.1 make a repeated one ``invalid_request``."""
    name = repeated_parameter(pairs)
    if name is not None:
        raise InvalidRequestError(f"The parameter '{_printable(name)}' is repeated.")


def client_auth_methods(form: Iterable[tuple[str, str]], headers: Mapping[str, str]) -> list[str]:
    """The client authentication methods a request uses, in the names of RFC 7591 §2.

    HTTP Basic counts when the Authorization header says ``Basic``; a bare ``client_id`` in
    the body names a client but authenticates nothing, so it is no method of its own.
    """
    names = {name for name, _ in form}
    methods = []
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if authorization.split(" ", 1)[0].lower() == "basic":
        methods.append("client_secret_basic")
    if SECRET_PARAMETER in names:
        methods.append("client_secret_post")
    if names.intersection(ASSERTION_PARAMETERS):
        methods.append("private_key_jwt")
    return methods


def refuse_mixed_client_auth(form: Iterable[tuple[str, str]], headers: Mapping[str, str]) -> None:
    """RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
    request"; §5.2 names that ``invalid_request``."""
    if len(client_auth_methods(form, headers)) > 1:
        raise InvalidRequestError("Use one client authentication method per request.")


def refuse_unreadable_basic_credentials(headers: Mapping[str, str]) -> None:
    """RFC 7617 §2.1: Basic credentials are text (our clients' ids and secrets are UTF-8).
    Authlib's parser decodes them as UTF-8 and raises on other bytes, which became a 500;
    such a header authenticates no client: ``invalid_client``, 401 with a Basic challenge
    (RFC 6749 §5.2), as for a header that is not base64 at all."""
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    kind, _, token = authorization.partition(" ")
    if kind.lower() != "basic":
        return
    try:
        credentials = base64.b64decode(token)
    except (ValueError, TypeError):  # binascii.Error, and text that is not ASCII
        return  # not base64: answered as before, no client authenticated
    try:
        credentials.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidClientError(
            status_code=401, description="The Basic credentials are not UTF-8 text."
        ) from None


def _printable(name: str) -> str:
    """A parameter name fit for an error description (RFC 6749 §5.2: %x20-21 / %x23-5B /
    %x5D-7E), since it is the client's text, not ours."""
    kept = "".join(c for c in name if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
    return kept[:40] or "?"
