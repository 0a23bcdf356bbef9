"""Protocol endpoints: discovery, JWKS, authorize, PAR, token, userinfo, revoke, introspect."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    make_response,
    redirect,
    request,
    url_for,
)

from oidc_link.config import SUPPORTED_SCOPES
from oidc_link.ids import digest
from oidc_link.models import Flow
from oidc_link.oauth import (
    AuthorizationPageError,
    InvalidAccessTokenError,
    ProtocolRequest,
    ProtocolResponse,
)
from oidc_link.oauth.claims import ACR_SMS_OTP
from oidc_link.oauth.client_keys import ASSERTION_ALGORITHMS
from oidc_link.oauth.grants import RESPONSE_MODES, TOKEN_AUTH_METHODS
from oidc_link.tokens import INTROSPECTION_AUTH_METHODS, REVOCATION_AUTH_METHODS
from oidc_link.web.answers import authorization_answer
from oidc_link.web.browser import (
    authorize_flow,
    bind_browser,
    browser_id_or_new,
    remember_authorize_flow,
    session_secret,
)
from oidc_link.web.context import web_context
from oidc_link.web.errors import error_page
from oidc_link.web.pages import flow_page, pending_flow_page

log = logging.getLogger(__name__)

protocol = Blueprint("protocol", __name__)

PUBLIC_CACHE = "public, max-age=300"
# A GET carrying one of these (as WSGI names them) asks for a comparison with the ETag or a
# range (RFC 9110 §13.1, §14.2); without one, the answer is the whole document.
_CONDITIONAL_REQUEST_HEADERS = frozenset(
    {
        "HTTP_IF_MATCH",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_IF_UNMODIFIED_SINCE",
        "HTTP_IF_RANGE",
        "HTTP_RANGE",
    }
)
DOCUMENTS_EXTENSION = "oidc_link_documents"


def protocol_request() -> ProtocolRequest:
    return ProtocolRequest(
        method=request.method,
        path=request.path,
        query=list(request.args.items(multi=True)),
        form=list(request.form.items(multi=True)) if request.method == "POST" else [],
        headers=dict(request.headers),
    )


def to_flask(response: ProtocolResponse) -> Response:
    body = response.body
    if isinstance(body, dict):
        body = json.dumps(body)
    return Response(body, status=response.status, headers=response.headers)


@protocol.get("/.well-known/openid-configuration")
def discovery() -> Response:
    context = web_context()
    algorithms = context.services.keys.signing_algorithms()
    # The document changes only with the signing algorithms (a key rotation): it is
    # encoded once per set of them, not on every request.
    body, _ = _encoded_documents().get(
        ("discovery", *algorithms), lambda: _discovery_document(algorithms)
    )
    return _public_json_body(body, PUBLIC_CACHE)


def _discovery_document(signing_algorithms: list[str]) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 §3 (and RFC 8414 §2) provider metadata."""
    issuer = web_context().services.settings.issuer
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "revocation_endpoint": issuer + "/revoke",
        "revocation_endpoint_auth_methods_supported": list(REVOCATION_AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "introspection_endpoint": issuer + "/introspect",
        "introspection_endpoint_auth_methods_supported": list(INTROSPECTION_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "jwks_uri": issuer + "/jwks.json",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": signing_algorithms,
        "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
        # private_key_jwt assertions (OIDC Discovery §3, RFC 8414 §2).
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "at_hash",
            "email",
            "email_verified",
            "name",
            "sid",
        ],
        "claim_types_supported": ["normal"],
        "ui_locales_supported": ["en"],
        "authorization_response_iss_parameter_supported": True,
        # OIDC Core §5.5; our one authentication context (oauth/claims.py).
        "claims_parameter_supported": True,
        "acr_values_supported": [ACR_SMS_OTP],
        "request_parameter_supported": False,
        # Only our own PAR URNs are accepted as request_uri, and PAR is announced by its
        # endpoint (RFC 9126 §5); this flag is about request objects fetched by reference
        # (OIDC Core §6.2), which we do not do.
        "request_uri_parameter_supported": False,
        "pushed_authorization_request_endpoint": issuer + "/par",
        "require_pushed_authorization_requests": False,
        # RP-Initiated Logout 1.0 §2.1, Back-Channel Logout 1.0 §2.1.
        "end_session_endpoint": issuer + "/logout",
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }
    return document


@protocol.get("/jwks.json")
def jwks() -> Response:
    services = web_context().services
    key_set = services.keys.jwks()
    # A key id names one public key (keys.py: the JWK thumbprint), so the published kids
    # say what the set holds: it is encoded, and its ETag computed, once per set of keys.
    body, etag = _encoded_documents().get(
        ("jwks", *(key["kid"] for key in key_set["keys"])), lambda: key_set
    )
    # Consistent with the rotation schedule: a new key is published at least this long,
    # plus a margin, before it signs (keys.py).
    cache = f"public, max-age={services.settings.keys.jwks_max_age}"
    response = _public_json_body(body, cache, etag)
    if _CONDITIONAL_REQUEST_HEADERS.isdisjoint(request.environ):
        return response  # nothing to compare: the whole document, as make_conditional would
    # RFC 9110 §13.1.2: If-None-Match with the current ETag gets 304 Not Modified.
    return response.make_conditional(request)


@protocol.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int]:
    context = web_context()
    fingerprint = _request_fingerprint()
    remembered = authorize_flow(fingerprint)
    if remembered is not None:
        # Reload of (or Back to) the very request that began this browser's pending flow:
        # that flow's page again, as /signin/<id> shows it, not a second flow counted as a
        # second sign-in started. A pushed request_uri is not resolved again: it was used
        # once, and RFC 9126 §4 lets a reload of the same authorization request be served.
        page = pending_flow_page(remembered)
        if page is not None:
            return page
    session = context.sessions.find(session_secret())
    try:
        # RFC 9126 §4: a pushed request_uri stands for the parameters pushed with it.
        authorization = context.provider.resolve_authorization_request(protocol_request())
        outcome = context.provider.validate_authorization(authorization, session)
    except AuthorizationPageError as error:
        log.info("Refused authorization request without redirect: %s", error.error.error)
        return error_page(
            "We can't sign you in from this link",
            "The site that sent you here made a request we cannot accept: "
            f"{_sentence(error.description)} Go back to the site and try again, "
            "or tell its owner.",
            400,
        )
    if isinstance(outcome, ProtocolResponse):
        return _deliver(outcome, authorization.parameters)
    signed_in, client_id = outcome.signed_in, outcome.client.client_id
    provider = context.provider
    if signed_in and provider.consent_request(client_id, outcome.parameters, signed_in).needed:
        # A third-party client not (yet, or no longer) approved, or prompt=consent: the
        # session spares the SMS, and the flow begins at the consent step (OIDC Core §3.1.2.4).
        browser = browser_id_or_new()
        flow = context.interaction.start(client_id, outcome.parameters, browser, signed_in)
        return _to_flow_page(flow.id, browser)
    if outcome.signed_in is not None:
        # Single sign-on: the session answers, no page and no SMS (auth_time stays the
        # time of the real sign-in).
        answer = context.provider.approve(outcome.parameters, outcome.signed_in, session)
        return _deliver(answer, outcome.parameters)
    browser = browser_id_or_new()
    flow = context.interaction.start(outcome.client.client_id, outcome.parameters, browser)
    return _first_page(flow, browser, fingerprint)


def _first_page(flow: Flow, browser: str, fingerprint: str) -> Response:
    """A new sign-in's email page as the answer to /authorize itself, not a 303 to
    /signin/<id>: one HTTP exchange (on a phone, a network round trip) less per sign-in.

    Its forms post to the flow's own URLs, whose answers redirect (post/redirect/get), so
    Reload never sends a second SMS. The cookies bind the flow to this browser and remember
    it under this request, for a reload of the URL the browser now shows.
    """
    response = make_response(flow_page(flow))
    secure = web_context().services.settings.secure_cookies
    bind_browser(response, browser, secure=secure)
    remember_authorize_flow(response, flow.id, fingerprint, secure=secure)
    return response


def _to_flow_page(flow_id: str, browser: str) -> Response:
    """To a hosted page of a new flow, with the cookie that binds it to this browser."""
    response = redirect(url_for("pages.show", flow_id=flow_id), 303)
    secure = web_context().services.settings.secure_cookies
    bind_browser(response, browser, secure=secure)
    return response


def _request_fingerprint() -> str:
    """What a reload repeats byte for byte: the request's method, query and form."""
    form = list(request.form.items(multi=True)) if request.method == "POST" else []
    query = request.query_string.decode("latin-1")
    return digest(json.dumps([request.method, query, form]))[:32]


@protocol.post("/token")
def token() -> Response:
    return to_flask(web_context().provider.token(protocol_request()))


@protocol.post("/par")
def pushed_authorization_request() -> Response:
    """RFC 9126 §2: the parameters come form-encoded in the body."""
    if request.mimetype != "application/x-www-form-urlencoded":
        response = jsonify(
            error="invalid_request",
            error_description="Send the request as application/x-www-form-urlencoded.",
        )
        response.status_code = 400
        return response
    return to_flask(web_context().provider.push_authorization(protocol_request()))


@protocol.post("/revoke")
def revoke() -> Response:
    return to_flask(web_context().provider.revocation(protocol_request()))


@protocol.post("/introspect")
def introspect() -> Response:
    return to_flask(web_context().provider.introspection(protocol_request()))


@protocol.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    access_token = value.strip() if scheme.lower() == "bearer" else None
    if access_token is None and request.method == "POST":
        access_token = request.form.get("access_token")  # RFC 6750 §2.2
    try:
        claims = web_context().provider.userinfo(access_token)
    except InvalidAccessTokenError:
        # RFC 6750 §3.1: no error code when the request carried no token at all.
        challenge = 'Bearer error="invalid_token"' if access_token else "Bearer"
        response = jsonify(
            error="invalid_token", error_description="The access token is not valid."
        )
        response.status_code = 401
        response.headers["WWW-Authenticate"] = challenge
        return response
    return jsonify(claims)


def _public_json_body(body: bytes, cache_control: str, etag: str | None = None) -> Response:
    # Every header in one list: Werkzeug then neither derives the content type nor looks
    # for each header before setting it.
    headers = [
        ("Content-Type", "application/json"),
        ("Cache-Control", cache_control),
        ("Access-Control-Allow-Origin", "*"),
    ]
    if etag is not None:
        headers.append(("ETag", f'"{etag}"'))  # a strong validator (RFC 9110 §8.8.3)
    return Response(body, headers=headers)


class EncodedDocuments:
    """Public JSON documents (discovery, JWKS) encoded once per content, with their ETag.

    Each is looked up by a key that names its content; the few there ever are (one per key
    rotation) are kept, and the cache starts over if it ever holds more than a handful.
    """

    LIMIT = 16

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, ...], tuple[bytes, str]] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def get(
        self, key: tuple[str, ...], document: Callable[[], Mapping[str, Any]]
    ) -> tuple[bytes, str]:
        found = self._bodies.get(key)
        if found is None:
            # Encoded as jsonify would: the app's JSON provider, and a final newline.
            body = (current_app.json.dumps(document()) + "\n").encode()
            found = (body, hashlib.sha256(body).hexdigest()[:32])
            if len(self._bodies) >= self.LIMIT:
                self._bodies.clear()
            self._bodies[key] = found
        return found


def _encoded_documents() -> EncodedDocuments:
    # One per app, made on first use; threads that race here build the same bytes.
    documents = current_app.extensions.get(DOCUMENTS_EXTENSION)
    if documents is None:
        documents = current_app.extensions.setdefault(DOCUMENTS_EXTENSION, EncodedDocuments())
    return documents


def _sentence(text: str) -> str:
    """A library's error description as part of our sentence: lower-case start, one stop."""
    text = text.strip().rstrip(".")
    return (text[:1].lower() + text[1:] + ".") if text else ""


def _deliver(response: ProtocolResponse, parameters: Mapping[str, str]) -> Response:
    """An authorization response, redirected or posted as the request's response_mode says."""
    if response.location is None:
        return to_flask(response)
    mode = parameters.get("response_mode")
    return authorization_answer(response.location, parameters.get("redirect_uri"), mode)
