"""The redirects of an authorization request: on success the code and ``state`` (RFC 6749
§4.1.2) and ``iss`` (RFC 9207 §2) added to the redirect URI in one pass.

Authlib's ``add_params_to_uri``, called twice (the code and state, then ``iss``), parsed the
URI, decoded and re-encoded its query each time. The result is the same bytes: the
redirect URI's own query decoded and re-encoded form-style (as ``add_params_to_uri`` does),
then ``code``, ``state`` and ``iss`` in that order (tests/test_code_redirect.py compares the
two on many URIs and values). What comes before the new parameters is worked out once per
redirect URI, the issuer's encoding once per issuer.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import parse_qsl, quote_plus, urlencode, urlparse, urlunparse

from authlib.common.urls import add_params_to_uri

from oidc_link.oauth.messages import ProtocolResponse


def code_location(redirect_uri: str, code: str, state: str | None, issuer: str) -> str:
    """``redirect_uri`` with ``code``, ``state`` (when not empty) and ``iss`` added."""
    head, tail = _around_parameters(redirect_uri)
    iss = _iss_parameter(issuer)
    if state:
        return f"{head}code={quote_plus(code)}&state={quote_plus(state)}{iss}{tail}"
    return f"{head}code={quote_plus(code)}{iss}{tail}"


@lru_cache(maxsize=256)
def _around_parameters(redirect_uri: str) -> tuple[str, str]:
    """What comes before the new parameters (up to the '?' and the URI's own query,
    re-encoded as ``add_params_to_uri`` re-encodes it, with its '&') and after them (the
    fragment). Bounded: a client registers a few URIs, and any number stay correct."""
    scheme, netloc, path, params, query, fragment = urlparse(redirect_uri)
    own = urlencode([(name.encode(), value.encode()) for name, value in parse_qsl(query, True)])
    head = urlunparse((scheme, netloc, path, params, "", "")) + "?" + (own + "&" if own else "")
    return head, "#" + fragment if fragment else ""


@lru_cache(maxsize=8)
def _iss_parameter(issuer: str) -> str:
    return "&iss=" + quote_plus(issuer)


def with_issuer(response: ProtocolResponse, issuer: str) -> ProtocolResponse:
    """``iss`` added to an error redirect of an authorization request (RFC 9207 §2), as
    Authlib adds parameters; the success redirect has it from ``code_location``."""
    if response.location:
        response.headers = [
            (
                name,
                add_params_to_uri(value, [("iss", issuer)])
                if name.lower() == "location"
                else value,
            )
            for name, value in response.headers
        ]
    return response
