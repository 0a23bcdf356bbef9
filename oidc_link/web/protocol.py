"""Protocol endpoints: discovery, JWKS, authorize, token, userinfo, revoke and introspect."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request, url_for

from oidc_link.config import SUPPORTED_SCOPES
from oidc_link.oauth import (
    AuthorizationPageError,
    InvalidAccessTokenError,
    ProtocolRequest,
    ProtocolResponse,
)
from oidc_link.oauth.grants import RESPONSE_MODES, TOKEN_AUTH_METHODS
from oidc_link.tokens import INTROSPECTION_AUTH_METHODS, REVOCATION_AUTH_METHODS
from oidc_link.web.answers import authorization_answer
from oidc_link.web.browser import bind_browser, browser_id_or_new, session_secret
from oidc_link.web.context import web_context
from oidc_link.web.errors import error_page

log = logging.getLogger(__name__)

protocol = Blueprint("protocol", __name__)

PUBLIC_CACHE = "public, max-age=300"


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
    issuer = context.services.settings.issuer
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "revocation_endpoint": issuer + "/revoke",
        "revocation_endpoint_auth_methods_supported": list(REVOCATION_AUTH_METHODS),
        "introspection_endpoint": issuer + "/introspect",
        "introspection_endpoint_auth_methods_supported": list(INTROSPECTION_AUTH_METHODS),
        "jwks_uri": issuer + "/jwks.json",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": context.services.keys.signing_algorithms(),
        "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
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
            "at_hash",
            "email",
            "email_verified",
            "name",
        ],
        "claim_types_supported": ["normal"],
        "ui_locales_supported": ["en"],
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    return _public_json(document)


@protocol.get("/jwks.json")
def jwks() -> Response:
    services = web_context().services
    response = _public_json(services.keys.jwks())
    # Consistent with the rotation schedule: a new key is published at least this long,
    # plus a margin, before it signs (keys.py).
    response.headers["Cache-Control"] = f"public, max-age={services.settings.keys.jwks_max_age}"
    response.set_etag(hashlib.sha256(response.get_data()).hexdigest()[:32])
    return response.make_conditional(request)


@protocol.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | tuple[str, int]:
    context = web_context()
    session = context.sessions.find(session_secret())
    try:
        outcome = context.provider.validate_authorization(protocol_request(), session)
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
        return _deliver(outcome, request.values)
    if outcome.signed_in is not None:
        # Single sign-on: the session answers, no page and no SMS (auth_time stays the
        # time of the real sign-in).
        answer = context.provider.approve(outcome.parameters, outcome.signed_in)
        return _deliver(answer, outcome.parameters)
    browser = browser_id_or_new()
    flow = context.interaction.start(outcome.client.client_id, outcome.parameters, browser)
    response = redirect(url_for("pages.show", flow_id=flow.id), 303)
    bind_browser(response, browser, secure=context.services.settings.issuer.startswith("https:"))
    return response


@protocol.post("/token")
def token() -> Response:
    return to_flask(web_context().provider.token(protocol_request()))


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


def _public_json(document: dict[str, Any]) -> Response:
    response = jsonify(document)
    response.headers["Cache-Control"] = PUBLIC_CACHE
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


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
