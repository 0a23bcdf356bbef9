"""Protocol endpoints: discovery, JWKS, authorize, PAR, token, userinfo, revoke, introspect."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii

from flask import (
    Blueprint,
    Request,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
    url_for,
)
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from oidc_link.config import first_supported
from oidc_link.ids import digest, new_secret
from oidc_link.models import Flow, SsoSession
from oidc_link.oauth.messages import (
    AuthorizationPageError,
    InvalidAccessTokenError,
    ProtocolRequest,
    ProtocolResponse,
)
from oidc_link.services import Services
from oidc_link.sign_in import Next, SignInRequest, Via
from oidc_link.store import Writes
from oidc_link.web.answers import authorization_answer
from oidc_link.web.browser import (
    authorize_flow,
    bind_browser,
    browser_id_of,
    remember_authorize_flow,
    session_secret,
)
from oidc_link.web.context import public_documents, services
from oidc_link.web.errors import page_for, protocol_error
from oidc_link.web.flow_render import page_response
from oidc_link.web.languages import use_language
from oidc_link.web.pages import Page, flow_page, pending_flow_page
from oidc_link.web.public_documents import (
    CONDITIONAL_REQUEST_HEADERS,
    DISCOVERY_PATH,
    JWKS_PATH,
)
from oidc_link.web.query_pairs import query_pairs
from oidc_link.web.token_response import token_response

log = logging.getLogger(__name__)

protocol = Blueprint("protocol", __name__)


def protocol_request() -> ProtocolRequest:
    """A back-channel request (/token, /par, /revoke, /introspect): its headers carry the
    client's credentials."""
    http: Request = request._get_current_object()  # type: ignore[attr-defined]
    return ProtocolRequest(
        method=http.method,
        path=http.path,
        query=list(http.args.items(multi=True)),
        form=list(http.form.items(multi=True)) if http.method == "POST" else [],
        headers=dict(http.headers),
    )


def to_flask(response: ProtocolResponse) -> Response:
    body = response.body
    if isinstance(body, dict):
        body = json.dumps(body)
    return Response(body, status=response.status, headers=response.headers)


@protocol.get(DISCOVERY_PATH)
def discovery() -> Response:
    # Mostly answered before Flask (fast_path.py); the same document either way.
    return public_documents().discovery().response()


@protocol.get(JWKS_PATH)
def jwks() -> Response:
    response = public_documents().jwks().response()
    if CONDITIONAL_REQUEST_HEADERS.isdisjoint(request.environ):
        return response  # nothing to compare: the whole document, as make_conditional would
    # RFC 9110 §13.1.2: If-None-Match with the current ETag gets 304 Not Modified.
    return response.make_conditional(request)


@protocol.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | Page:
    found = services()
    http: Request = request._get_current_object()  # type: ignore[attr-defined]
    asked = _authorization_request(http)
    fingerprint = _request_fingerprint(asked, http.query_string)
    remembered = authorize_flow(fingerprint)
    if remembered is not None:
        # Reload of (or Back to) the very request that began this browser's pending flow:
        # that flow's page again, as /signin/<id> shows it, not a second flow counted as a
        # second sign-in started. A pushed request_uri is not resolved again: it was used
        # once, and RFC 9126 §4 lets a reload of the same authorization request be served.
        page = pending_flow_page(remembered)
        if page is not None:
            return page
    # The session's renewal is queued, not sent: it goes with the account's read on the SSO
    # path (sign_in.py), else alone as the block ends, whatever the answer.
    with found.sessions.renewals() as renewal:
        session = found.sessions.find(session_secret(), renewal)
        return _answer_authorization(found, http, asked, fingerprint, session, renewal)


def _answer_authorization(
    found: Services,
    http: Request,
    asked: ProtocolRequest,
    fingerprint: str,
    session: SsoSession | None,
    renewal: Writes,
) -> Response:
    try:
        # RFC 9126 §4: a pushed request_uri stands for the parameters pushed with it.
        authorization = found.provider.resolve_authorization_request(asked)
        outcome = found.provider.validate_authorization(authorization, session)
    except AuthorizationPageError as error:
        log.info("Refused authorization request without redirect: %s", error.error.error)
        # The page about a request we refuse still speaks the language it asked for.
        asked_locales = dict(asked.query or asked.form).get("ui_locales")
        use_language(first_supported(asked_locales))
        return page_for(error).response()
    if isinstance(outcome, ProtocolResponse):
        return _deliver(outcome, authorization.parameters)
    browser = browser_id_of(http, secure=found.settings.secure_cookies) or new_secret(32)
    if outcome.signed_in is not None:
        # Single sign-on: the session spares the SMS (auth_time stays the time of the real
        # sign-in); sign_in.py answers with a code, or with the consent step.
        request_for = SignInRequest(
            outcome.client.client_id, outcome.parameters, validated=outcome.grant
        )
        finished = found.sign_in.complete(
            request_for,
            outcome.signed_in,
            Via.SESSION,
            browser=browser,
            session=session,
            writes=renewal,
        )
        if finished.next is Next.CONSENT and finished.flow is not None:
            return _to_flow_page(finished.flow.id, browser)
        assert finished.answer is not None
        return _deliver(finished.answer, outcome.parameters)
    flow = found.interaction.start(outcome.client.client_id, outcome.parameters, browser)
    return _first_page(found, http, flow, browser, fingerprint)


def _first_page(
    found: Services, http: Request, flow: Flow, browser: str, fingerprint: str
) -> Response:
    """A new sign-in's email page as the answer to /authorize itself, not a 303 to
    /signin/<id>: one HTTP exchange (on a phone, a network round trip) less per sign-in.

    Its forms post to the flow's own URLs, whose answers redirect (post/redirect/get), so
    Reload never sends a second SMS. The cookies bind the flow to this browser and remember
    it under this request, for a reload of the URL the browser now shows.
    """
    # Flask's response for the page, its content type given (flow_render.page_response).
    response = page_response(flow_page(found, http, flow))
    secure = found.settings.secure_cookies
    bind_browser(response, browser, secure=secure)
    remember_authorize_flow(response, flow.id, fingerprint, secure=secure)
    return response


def _to_flow_page(flow_id: str, browser: str) -> Response:
    """To a hosted page of a new flow, with the cookie that binds it to this browser."""
    response = redirect(url_for("pages.show", flow_id=flow_id), 303)
    secure = services().settings.secure_cookies
    bind_browser(response, browser, secure=secure)
    return response


def _authorization_request(http: Request) -> ProtocolRequest:
    """An /authorize request as the protocol sees it: its query, and its form when POSTed
    (OIDC Core §3.1.2.1). Without headers: validating an authorization request reads none,
    so copying them all would be work for nothing."""
    return ProtocolRequest(
        method=http.method,
        path=http.path,
        query=query_pairs(http),
        form=list(http.form.items(multi=True)) if http.method == "POST" else [],
    )


def _request_fingerprint(asked: ProtocolRequest, query_string: bytes) -> str:
    """What a reload repeats byte for byte: the request's method, query and form.

    The digest of ``json.dumps([method, query, form])``, the list written out around the
    encoder's own string quoting (json.dumps builds an encoder for each call); a form, on a
    POST only, still goes through json.dumps. The same fingerprint as before, so a cookie
    set by the previous version still finds its flow."""
    query = encode_basestring_ascii(query_string.decode("latin-1"))
    form = json.dumps(asked.form) if asked.form else "[]"
    return digest(f"[{encode_basestring_ascii(asked.method)}, {query}, {form}]")[:32]


@protocol.post("/token")
def token() -> Response:
    # A plain form POST is mostly answered before Flask (token_fast_path.py), the same way.
    return token_answer(services().provider.token(_token_request()))



def token_answer(answer: ProtocolResponse) -> Response:
    """The answer as the app's own response class (web/token_response.py)."""
    return token_response(answer, current_app.response_class)


def _token_request() -> ProtocolRequest:
    """A token request as the protocol sees it. Of its headers only Authorization is read
    (client_secret_basic, and refusing two authentication methods at once): copying the
    others out of the WSGI environ was most of the work of building it. The form's pairs
    are read from the MultiDict's lists directly, in ``items(multi=True)``'s order."""
    http: Request = request._get_current_object()  # type: ignore[attr-defined]
    authorization = http.environ.get("HTTP_AUTHORIZATION")
    return ProtocolRequest(
        method="POST",
        path=http.path,
        query=list(http.args.items(multi=True)) if http.query_string else [],
        form=_form_pairs(http.form),
        headers={"Authorization": authorization} if authorization is not None else {},
    )


def _form_pairs(form: MultiDict[str, str]) -> list[tuple[str, str]]:
    """``list(form.items(multi=True))``: a plain MultiDict holds each name's values in a
    list, in the order the body gave them, so its pairs are read without the generator."""
    if form.__class__ is ImmutableMultiDict:
        return [(name, value) for name, values in dict.items(form) for value in values]
    return list(form.items(multi=True))


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
    return to_flask(services().provider.push_authorization(protocol_request()))


@protocol.post("/revoke")
def revoke() -> Response:
    return to_flask(services().provider.revocation(protocol_request()))


@protocol.post("/introspect")
def introspect() -> Response:
    return to_flask(services().provider.introspection(protocol_request()))


@protocol.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    access_token = value.strip() if scheme.lower() == "bearer" else None
    if access_token is None and request.method == "POST":
        access_token = request.form.get("access_token")  # RFC 6750 §2.2
    try:
        claims = services().userinfo.claims(access_token)
    except InvalidAccessTokenError as error:
        return to_flask(protocol_error(error))
    return jsonify(claims)


def _deliver(response: ProtocolResponse, parameters: Mapping[str, str]) -> Response:
    """An authorization response, redirected or posted as the request's response_mode says."""
    if response.location is None:
        return to_flask(response)
    mode = parameters.get("response_mode")
    if mode == "form_post":
        # The form_post page speaks the request's ui_locales, as the sign-in's pages do.
        use_language(first_supported(parameters.get("ui_locales")))
    return authorization_answer(response.location, parameters.get("redirect_uri"), mode)
