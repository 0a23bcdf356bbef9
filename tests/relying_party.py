"""Test actors: a relying party built from Authlib's client classes, and a browser.

Both talk to the provider's Flask test client; the relying party through a requests
transport, so Authlib does real discovery, PKCE, token exchange and ID-token validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import TestResponse

# A PKCE pair (RFC 7636 Appendix B) for requests written by hand: every client must send
# PKCE unless registered with require_pkce = false.
PKCE_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
PKCE = {
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
}


class FlaskTransport(BaseAdapter):
    """A requests transport that hands each request to a Flask test client."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self._client = app.test_client()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url)
        answer = self._client.open(
            url.path,
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            method=request.method,
            headers=dict(request.headers),
            data=request.body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(dict(answer.headers))
        response._content = answer.get_data()
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


class RelyingParty:
    """An RP as a real client library would behave, against the provider under test."""

    def __init__(
        self,
        app: Flask,
        issuer: str,
        client_id: str,
        redirect_uri: str,
        client_secret: str | None = None,
        auth_method: str = "client_secret_basic",
        scope: str = "openid email profile",
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.http = requests.Session()
        self.http.mount(issuer, FlaskTransport(app))
        self.metadata = self.http.get(issuer + "/.well-known/openid-configuration").json()
        self.session = OAuth2Session(
            client_id,
            client_secret,
            scope=scope,
            redirect_uri=redirect_uri,
            token_endpoint_auth_method=auth_method,
            code_challenge_method="S256",
        )
        self.session.mount(issuer, FlaskTransport(app))

    def authorization_request(self, **extra: str) -> AuthorizationRequest:
        nonce = generate_token(20)
        verifier = generate_token(48)
        url, state = self.session.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
        )
        return AuthorizationRequest(url, state, nonce, verifier)

    def exchange(self, callback_url: str, request: AuthorizationRequest) -> dict[str, Any]:
        return dict(
            self.session.fetch_token(
                self.metadata["token_endpoint"],
                authorization_response=callback_url,
                state=request.state,
                code_verifier=request.code_verifier,
            )
        )

    def validate_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """Validate like Authlib's OpenID clients do: JWKS signature, iss, aud, exp, nonce."""
        key_set = KeySet.import_key_set(self.http.get(self.metadata["jwks_uri"]).json())
        decoded = jwt.decode(
            token["id_token"],
            key=key_set,
            registry=JWSRegistry(algorithms=self.metadata["id_token_signing_alg_values_supported"]),
        )
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"values": [self.metadata["issuer"]]}},
            {"nonce": nonce, "client_id": self.client_id, "access_token": token["access_token"]},
        )
        claims.validate(leeway=120)  # the leeway Authlib's own OpenID clients allow
        return dict(claims)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


class Browser:
    """A person's browser on the hosted pages: keeps cookies, reads and submits the forms."""

    def __init__(self, app: Flask, issuer: str) -> None:
        self.client: FlaskClient = app.test_client()
        self.base_url = issuer
        self.page: TestResponse | None = None

    def get(self, url: str) -> TestResponse:
        parts = urlsplit(url)
        self.page = self.client.get(parts.path, query_string=parts.query, base_url=self.base_url)
        return self.page

    def start(self, authorization_url: str) -> TestResponse:
        """Follow the RP's redirect to us: a new sign-in's email page is /authorize's answer;
        other flows (consent) are a 303 to their hosted page, followed."""
        answer = self.get(authorization_url)
        if answer.status_code == 303:
            return self.get(answer.headers["Location"])
        return answer

    def flow_path(self) -> str:
        """The address of the flow behind the page shown (``/signin/<id>``), from its form."""
        action = self.soup().find("form", action=lambda a: a and a.startswith("/signin/"))
        assert action is not None, "no form of a flow on this page"
        return action["action"].rsplit("/", 1)[0]

    def soup(self) -> BeautifulSoup:
        assert self.page is not None
        return BeautifulSoup(self.page.get_data(as_text=True), "html.parser")

    def submit(self, action_suffix: str, **fields: str) -> TestResponse:
        """Post the page's form whose action ends with ``action_suffix``; follow our own 303."""
        form = next(
            f for f in self.soup().find_all("form") if f.get("action", "").endswith(action_suffix)
        )
        data = {
            field["name"]: field.get("value", "")
            for field in form.find_all("input")
            if field.get("name")
        }
        data.update(fields)
        answer = self.client.post(form["action"], data=data, base_url=self.base_url)
        self.page = answer
        location = answer.headers.get("Location", "")
        if answer.status_code == 303 and (
            location.startswith("/") or location.startswith(self.base_url)
        ):
            return self.get(location)
        return answer
