"""private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): a client signs
an assertion with its own key, at /token (both grants), /revoke and /introspect.

Keys come inline from the configuration or from a ``jwks_uri`` served by a real HTTP server
on loopback. Every test runs twice, on the embedded fakeredis and on a real redis-server,
since the replay check lives in Redis.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey
from werkzeug.test import TestResponse

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import Settings, settings_from_mapping
from oidc_link.errors import ConfigError
from oidc_link.oauth.client_keys import CACHE_SECONDS, MAX_JWKS_BYTES, REFETCH_INTERVAL
from oidc_link.services import build_services
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, SHOP_SECRET, provider_config
from tests.relying_party import Browser, RelyingParty
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER

TOKEN_ENDPOINT = ISSUER + "/token"
API_CALLBACK = "https://api.example.test/callback"
WORKER_CALLBACK = "https://worker.example.test/callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OFFLINE = "openid email offline_access"


# --- Keys: the clients' private keys; only their public halves are registered. ---


@dataclass(frozen=True)
class ClientKeyPairs:
    api: RSAKey  # inline jwks of the "api" client
    worker: ECKey  # published at the "worker" client's jwks_uri
    worker_next: ECKey  # the key "worker" rotates to
    stranger: RSAKey  # nobody's key
    edwards: OKPKey  # a second inline key of "api"


@pytest.fixture(scope="module")
def keys() -> ClientKeyPairs:
    return ClientKeyPairs(
        api=RSAKey.generate_key(2048, parameters={"kid": "api-rsa"}),
        worker=ECKey.generate_key("P-256", parameters={"kid": "worker-1"}),
        worker_next=ECKey.generate_key("P-256", parameters={"kid": "worker-2"}),
        stranger=RSAKey.generate_key(2048, parameters={"kid": "api-rsa"}),
        edwards=OKPKey.generate_key("Ed25519", parameters={"kid": "api-ed"}),
    )


def public_set(*keys: Key) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


# --- A client's jwks_uri: a real HTTP server on 127.0.0.1. ---


@dataclass
class JwksServer:
    """Serves ``document`` at /jwks.json and counts the fetches; ``fault`` changes the answer:
    "status" (HTTP 500), "redirect_http" (a 302 to a plain-http URL), "redirect_loopback" (a
    302 to an https URL on loopback) or "huge" (a 300 KB body)."""

    document: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None
    fetches: int = 0

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                if server.fault == "status":
                    self._answer(500, b"{}")
                elif server.fault == "redirect_http":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{server.port}/other.json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif server.fault == "redirect_loopback":
                    self.send_response(302)
                    self.send_header("Location", f"https://localhost:{server.port}/other.json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif server.fault == "huge":
                    self._answer(200, b'{"keys": [], "padding": "' + b"x" * 300_000 + b'"}')
                else:
                    self._answer(200, json.dumps(server.document).encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, args=(0.01,), daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def jwks_server(keys: ClientKeyPairs) -> Iterator[JwksServer]:
    server = JwksServer(public_set(keys.worker))
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- The provider, with two private_key_jwt clients added to the usual ones. ---


def config_with(*clients: dict[str, Any]) -> dict[str, Any]:
    config = provider_config()
    config["clients"] = [*config["clients"], *clients]  # type: ignore[misc]
    return config


def api_client(keys: ClientKeyPairs) -> dict[str, Any]:
    return {
        "client_id": "api",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": public_set(keys.api, keys.edwards),
        "redirect_uris": [API_CALLBACK],
    }


def worker_client(jwks_uri: str) -> dict[str, Any]:
    return {
        "client_id": "worker",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": jwks_uri,
        "redirect_uris": [WORKER_CALLBACK],
    }


@pytest.fixture
def settings(keys: ClientKeyPairs, jwks_server: JwksServer) -> Settings:
    """Overrides conftest's: the app fixture builds the provider from these."""
    config = config_with(api_client(keys), worker_client(jwks_server.uri))
    return settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")


# --- Assertions, made by hand so that each check can be broken on purpose. ---


def make_assertion(
    key: Key,
    now: int,
    client_id: str = "api",
    *,
    alg: str = "RS256",
    header: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A client assertion; an override of None leaves that claim out."""
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    protected = {"alg": alg, "kid": key.kid, **(header or {})}
    return jwt.encode(protected, claims, key, algorithms=[alg])


def unsigned_assertion(now: int, client_id: str = "api") -> str:
    """``alg: none`` (RFC 7519 §6): header and claims, no signature."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    return part({"alg": "none"}) + "." + part(claims) + "."


def with_assertion(assertion: str, **form: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **form}


def post(app: Flask, path: str, data: dict[str, str], **kwargs: Any) -> TestResponse:
    return app.test_client().post(path, data=data, base_url=ISSUER, **kwargs)


def introspect(
    app: Flask, assertion: str, token: str = "no-such-token", **form: str
) -> TestResponse:
    """/introspect with an unknown token: 200 ``active: false`` once the client is
    authenticated, so the status says whether the assertion was accepted."""
    return post(app, "/introspect", with_assertion(assertion, token=token, **form))


def assert_invalid_client(answer: TestResponse) -> None:
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert answer.json is not None
    assert answer.json["error"] == "invalid_client"


def key_rp(app: Flask, client_id: str, callback: str, key: Key, audience: str) -> RelyingParty:
    """A relying party whose Authlib client signs private_key_jwt assertions with ``key``."""
    rp = RelyingParty(
        app,
        ISSUER,
        client_id,
        callback,
        client_secret=key,
        auth_method="private_key_jwt",
        scope=OFFLINE,
    )
    method = PrivateKeyJWT(audience, headers={"kid": key.kid}, alg=key_alg(key))
    rp.session.register_client_auth_method(method)
    return rp


def key_alg(key: Key) -> str:
    return "ES256" if isinstance(key, ECKey) else "RS256"


# --- The code and refresh grants, /revoke and /introspect. ---


def test_a_client_with_inline_keys_redeems_a_code_with_an_rs256_assertion(
    app: Flask, console: list[str], keys: ClientKeyPairs
) -> None:
    rp = key_rp(app, "api", API_CALLBACK, keys.api, TOKEN_ENDPOINT)
    request, callback = sign_in(Browser(app, ISSUER), rp, console)

    token = rp.exchange(callback, request)

    claims = rp.validate_id_token(token, request.nonce)
    assert claims["aud"] == "api"
    assert token["refresh_token"]


def test_a_client_with_a_jwks_uri_redeems_a_code_with_an_es256_assertion_to_the_issuer(
    app: Flask, console: list[str], keys: ClientKeyPairs, jwks_server: JwksServer
) -> None:
    # The issuer as audience: what RFC 9126 §2 and draft-ietf-oauth-rfc7523bis ask for.
    rp = key_rp(app, "worker", WORKER_CALLBACK, keys.worker, ISSUER)
    request, callback = sign_in(Browser(app, ISSUER), rp, console)

    token = rp.exchange(callback, request)

    assert rp.validate_id_token(token, request.nonce)["aud"] == "worker"
    assert jwks_server.fetches == 1


def test_refresh_revoke_and_introspect_accept_assertions(
    app: Flask, console: list[str], keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    rp = key_rp(app, "api", API_CALLBACK, keys.api, TOKEN_ENDPOINT)
    request, callback = sign_in(Browser(app, ISSUER), rp, console)
    first = rp.exchange(callback, request)
    now = live_clock.now()

    refreshed = post(
        app,
        "/token",
        with_assertion(
            make_assertion(keys.api, now),
            grant_type="refresh_token",
            refresh_token=first["refresh_token"],
        ),
    )
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    new_refresh = refreshed.json["refresh_token"]
    described = introspect(app, make_assertion(keys.api, now), token=new_refresh)
    assert described.status_code == 200
    assert described.json["active"] is True
    assert described.json["client_id"] == "api"

    revoked = post(app, "/revoke", with_assertion(make_assertion(keys.api, now), token=new_refresh))
    assert revoked.status_code == 200
    assert introspect(app, make_assertion(keys.api, now), token=new_refresh).json == {
        "active": False
    }


# Signing with "EdDSA" makes joserfc warn (RFC 9864); accepting it must not.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_an_ed25519_key_of_the_inline_set_signs_too(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    for alg in ("EdDSA", "Ed25519"):
        answer = introspect(app, make_assertion(keys.edwards, live_clock.now(), alg=alg))
        assert answer.status_code == 200, alg
        assert answer.json == {"active": False}


def test_the_issuer_and_the_token_endpoint_are_both_accepted_as_audience(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    now = live_clock.now()
    for audience in (ISSUER, TOKEN_ENDPOINT, [TOKEN_ENDPOINT, "https://elsewhere.example"]):
        assert introspect(app, make_assertion(keys.api, now, aud=audience)).status_code == 200


def test_a_pushed_authorization_request_accepts_an_assertion_to_the_par_endpoint(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    # RFC 9126 §2: the PAR endpoint's URL is an audience the server MUST accept.
    assertion = make_assertion(keys.api, live_clock.now(), aud=ISSUER + "/par")
    form = {
        "response_type": "code",
        "client_id": "api",
        "redirect_uri": API_CALLBACK,
        "scope": "openid email",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }

    answer = post(app, "/par", with_assertion(assertion, **form))

    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.json["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert_invalid_client(post(app, "/par", with_assertion(assertion, **form)))


def test_an_explicitly_typed_assertion_must_name_the_issuer_alone(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    # draft-ietf-oauth-rfc7523bis: typ client-authentication+jwt means the new audience rule.
    typed = {"typ": "client-authentication+jwt"}
    now = live_clock.now()
    assert (
        introspect(app, make_assertion(keys.api, now, aud=ISSUER, header=typed)).status_code == 200
    )
    for audience in (TOKEN_ENDPOINT, [ISSUER]):
        assertion = make_assertion(keys.api, now, aud=audience, header=typed)
        assert_invalid_client(introspect(app, assertion))


# --- Refusals: every one is a 401 invalid_client. ---


def test_a_replayed_assertion_is_refused(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    assertion = make_assertion(keys.api, live_clock.now())
    assert introspect(app, assertion).status_code == 200

    assert_invalid_client(introspect(app, assertion))
    # The same jti in a fresh signature is the same assertion to us.
    jti = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))["jti"]
    assert_invalid_client(introspect(app, make_assertion(keys.api, live_clock.now(), jti=jti)))


def test_a_jti_is_remembered_until_the_assertion_expires(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    now = live_clock.now()
    assert (
        introspect(app, make_assertion(keys.api, now, jti="once", exp=now + 300)).status_code == 200
    )
    live_clock.advance(290)

    later = live_clock.now()
    assert_invalid_client(introspect(app, make_assertion(keys.api, later, jti="once")))
    # Another client may use the same jti: replay is per client.
    worker_assertion = make_assertion(keys.worker, later, "worker", alg="ES256", jti="once")
    assert introspect(app, worker_assertion).status_code == 200


BROKEN_CLAIMS: dict[str, dict[str, Any]] = {
    "wrong audience": {"aud": "https://login.example.test/introspect"},
    "another issuer's audience": {"aud": "https://other-idp.example/token"},
    "no audience": {"aud": None},
    "expired": {"exp": "-120"},
    "no exp": {"exp": None},
    "lifetime over an hour": {"exp": "+7200"},
    "issued long before its expiry": {"iat": "-7200", "exp": "+60"},
    "issued in the future": {"iat": "+600"},
    "not yet valid": {"nbf": "+600"},
    "no jti": {"jti": None},
    "empty jti": {"jti": ""},
    "numeric jti": {"jti": 12345},
    "iss is another client": {"iss": "worker"},
    "no iss": {"iss": None},
    "sub is another client": {"sub": "worker"},
    "no sub": {"sub": None},
    "exp not a number": {"exp": "tomorrow"},
}


@pytest.mark.parametrize("case", BROKEN_CLAIMS, ids=list(BROKEN_CLAIMS))
def test_an_assertion_with_a_broken_claim_is_refused(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, case: str
) -> None:
    now = live_clock.now()
    overrides = {
        name: (now + int(value) if isinstance(value, str) and value[:1] in ("+", "-") else value)
        for name, value in BROKEN_CLAIMS[case].items()
    }

    assert_invalid_client(introspect(app, make_assertion(keys.api, now, **overrides)))


def test_an_assertion_signed_with_a_key_not_in_the_set_is_refused(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    # Same kid as the registered key, different key.
    assert_invalid_client(introspect(app, make_assertion(keys.stranger, live_clock.now())))
    # The worker's key is registered, but for another client.
    assert_invalid_client(
        introspect(app, make_assertion(keys.worker, live_clock.now(), alg="ES256"))
    )


def test_an_unsigned_assertion_is_refused(app: Flask, live_clock: FixedClock) -> None:
    assert_invalid_client(introspect(app, unsigned_assertion(live_clock.now())))


@pytest.mark.parametrize(
    "secret",
    ["registered-public-key-json", "modulus", "shared-words"],
)
def test_an_hs256_assertion_is_refused_whatever_its_secret(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, secret: str
) -> None:
    # The classic confusion: the public key (or anything else) used as an HMAC secret.
    material = {
        "registered-public-key-json": json.dumps(keys.api.as_dict(private=False)),
        "modulus": keys.api.as_dict(private=False)["n"],
        "shared-words": "correct horse battery staple",
    }[secret]
    hmac_key = OctKey.import_key(material.encode(), parameters={"kid": "api-rsa"})

    assertion = make_assertion(hmac_key, live_clock.now(), alg="HS256")

    assert_invalid_client(introspect(app, assertion))


def test_garbage_and_the_wrong_assertion_type_are_refused(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    valid = make_assertion(keys.api, live_clock.now())
    for form in (
        {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "not.a.jwt"},
        {"client_assertion_type": ASSERTION_TYPE, "client_assertion": ""},
        {"client_assertion_type": ASSERTION_TYPE},
        {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            "client_assertion": valid,
        },
        {"client_assertion": valid},
    ):
        assert_invalid_client(post(app, "/introspect", {**form, "token": "x"}))
    # Nothing of the assertion reaches the answer.
    assert valid not in post(app, "/introspect", {"client_assertion": valid}).get_data(as_text=True)


def test_no_assertion_reaches_the_log(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accepted = make_assertion(keys.api, live_clock.now())
    refused = make_assertion(keys.stranger, live_clock.now())

    assert introspect(app, accepted).status_code == 200
    assert_invalid_client(introspect(app, accepted))
    assert_invalid_client(introspect(app, refused))

    assert "Refused a client assertion" in caplog.text
    for assertion in (accepted, refused):
        for part in assertion.split("."):
            assert part not in caplog.text


def test_the_client_id_parameter_must_name_the_assertions_client(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    now = live_clock.now()
    assert introspect(app, make_assertion(keys.api, now), client_id="api").status_code == 200
    assert_invalid_client(introspect(app, make_assertion(keys.api, now), client_id="worker"))


def test_a_private_key_jwt_client_cannot_authenticate_with_a_secret(app: Flask) -> None:
    form = {"token": "x", "client_id": "api", "client_secret": "a-guess-at-a-secret-1234"}
    assert_invalid_client(post(app, "/introspect", form))
    assert_invalid_client(
        post(app, "/introspect", {"token": "x"}, auth=("api", "a-guess-at-a-secret-1234"))
    )
    # Nor as a public client, with its client_id alone.
    assert_invalid_client(post(app, "/revoke", {"token": "x", "client_id": "api"}))


def test_an_assertion_beside_a_secret_is_an_invalid_request(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    # RFC 6749 §2.3: one method per request, even when the assertion alone would do; §5.2
    # names a request that uses more than one invalid_request.
    assertion = make_assertion(keys.api, live_clock.now())
    with_secret = with_assertion(assertion, token="x", client_secret="a-guess-at-a-secret-1234")
    answers = [
        post(app, "/introspect", with_secret),
        post(app, "/introspect", with_assertion(assertion, token="x"), auth=("api", "guess")),
    ]
    for answer in answers:
        assert answer.status_code == 400
        assert answer.get_json()["error"] == "invalid_request"
    # Refused before the assertion was looked at: its jti is still unused.
    assert post(app, "/introspect", with_assertion(assertion, token="x")).status_code == 200


def test_secret_and_public_clients_cannot_authenticate_with_an_assertion(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    now = live_clock.now()
    for client_id in ("shop", "blog", "spa"):
        assertion = make_assertion(keys.api, now, client_id)
        assert_invalid_client(post(app, "/revoke", with_assertion(assertion, token="x")))
    assert_invalid_client(introspect(app, make_assertion(keys.api, now, "nobody")))


def test_a_refused_assertion_at_the_token_endpoint_spends_nothing(
    app: Flask, console: list[str], keys: ClientKeyPairs, live_clock: FixedClock
) -> None:
    rp = key_rp(app, "api", API_CALLBACK, keys.api, TOKEN_ENDPOINT)
    request, callback = sign_in(Browser(app, ISSUER), rp, console)
    code = dict(part.split("=", 1) for part in callback.split("?", 1)[1].split("&"))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": API_CALLBACK,
        "code_verifier": request.code_verifier,
    }
    expired = make_assertion(keys.api, live_clock.now(), exp=live_clock.now() - 300)

    assert_invalid_client(post(app, "/token", with_assertion(expired, **form)))
    good = post(app, "/token", with_assertion(make_assertion(keys.api, live_clock.now()), **form))
    assert good.status_code == 200, good.get_data(as_text=True)


# --- jwks_uri: caching, rotation, failures. ---


def test_the_jwks_uri_is_fetched_once_and_cached(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, jwks_server: JwksServer
) -> None:
    for _ in range(3):
        assertion = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")
        assert introspect(app, assertion).status_code == 200
    assert jwks_server.fetches == 1

    live_clock.advance(CACHE_SECONDS)
    assertion = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")
    assert introspect(app, assertion).status_code == 200
    assert jwks_server.fetches == 2


def test_a_new_kid_at_the_jwks_uri_triggers_one_refetch(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, jwks_server: JwksServer
) -> None:
    first = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")
    assert introspect(app, first).status_code == 200
    # The client rotates: its new key is published, and it signs with it right away.
    jwks_server.document = public_set(keys.worker, keys.worker_next)
    live_clock.advance(REFETCH_INTERVAL)

    rotated = make_assertion(keys.worker_next, live_clock.now(), "worker", alg="ES256")
    assert introspect(app, rotated).status_code == 200
    assert jwks_server.fetches == 2
    # A kid nobody published: no fetch storm, one try per REFETCH_INTERVAL at most.
    unknown = {"kid": "worker-unknown"}
    for _ in range(3):
        assertion = make_assertion(
            keys.stranger, live_clock.now(), "worker", alg="RS256", header=unknown
        )
        assert_invalid_client(introspect(app, assertion))
    assert jwks_server.fetches == 2
    live_clock.advance(REFETCH_INTERVAL)
    assertion = make_assertion(keys.stranger, live_clock.now(), "worker", header=unknown)
    assert_invalid_client(introspect(app, assertion))
    assert jwks_server.fetches == 3


def test_a_new_kid_soon_after_a_fetch_waits_for_the_refetch_interval(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, jwks_server: JwksServer
) -> None:
    assert (
        introspect(
            app, make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")
        ).status_code
        == 200
    )
    jwks_server.document = public_set(keys.worker_next)

    rotated = make_assertion(keys.worker_next, live_clock.now(), "worker", alg="ES256")
    assert_invalid_client(introspect(app, rotated))
    live_clock.advance(REFETCH_INTERVAL)
    rotated = make_assertion(keys.worker_next, live_clock.now(), "worker", alg="ES256")
    assert introspect(app, rotated).status_code == 200
    assert jwks_server.fetches == 2


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("status", "jwks_uri answered HTTP 500"),
        ("redirect_http", "a redirect to 127.0.0.1 is a loopback address"),
        ("redirect_loopback", "a redirect to localhost is a loopback address"),
        ("huge", f"an answer of more than {MAX_JWKS_BYTES} bytes"),
    ],
)
def test_a_jwks_uri_that_answers_badly_means_invalid_client(
    app: Flask,
    keys: ClientKeyPairs,
    live_clock: FixedClock,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    reason: str,
) -> None:
    jwks_server.fault = fault

    assertion = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")

    with caplog.at_level(logging.WARNING, "oidc_link.oauth.client_keys"):
        assert_invalid_client(introspect(app, assertion))
    # A redirect is followed neither to plain http nor to loopback, in development too:
    # only the configured URI itself may be on loopback (tests/test_outbound.py).
    assert jwks_server.fetches == 1
    assert f"Fetching jwks_uri {jwks_server.uri} failed: {reason}" in caplog.text


def test_keys_already_fetched_stay_in_use_while_the_jwks_uri_fails(
    app: Flask, keys: ClientKeyPairs, live_clock: FixedClock, jwks_server: JwksServer
) -> None:
    assertion = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")
    assert introspect(app, assertion).status_code == 200
    jwks_server.fault = "status"
    live_clock.advance(CACHE_SECONDS)

    assertion = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")

    assert introspect(app, assertion).status_code == 200
    assert jwks_server.fetches == 2


def test_a_jwks_uri_that_is_down_with_nothing_cached_means_invalid_client(
    keys: ClientKeyPairs, redis_client: Any, live_clock: FixedClock, console: list[str]
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/jwks.json"
    config = config_with(worker_client(down))
    settings = settings_from_mapping(config, {"SHOP_SECRET": SHOP_SECRET}, "test")
    app = create_app(
        settings,
        build_services(
            settings, clock=live_clock, redis_client=redis_client, announce=console.append
        ),
    )

    assertion = make_assertion(keys.worker, live_clock.now(), "worker", alg="ES256")

    assert_invalid_client(introspect(app, assertion))


# --- Start-up and discovery. ---


# joserfc warns about the short RSA key it is asked to make and read.
@pytest.mark.filterwarnings("ignore:Key size should be >= 2048 bits")
@pytest.mark.parametrize(
    ("problem", "jwks"),
    [
        ("private key material", lambda k: {"keys": [k.api.as_dict(private=True)]}),
        ("symmetric", lambda k: {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}),
        ("not a valid RSA JWK", lambda k: {"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}),
        ("shorter than 2048", lambda k: public_set(RSAKey.generate_key(1024))),
        ("no usable signing key", lambda k: {"keys": [{**k.api.as_dict(), "use": "enc"}]}),
    ],
    ids=["private", "symmetric", "invalid", "short-rsa", "encryption-only"],
)
def test_a_bad_inline_key_set_stops_start_up_naming_the_client(
    keys: ClientKeyPairs, redis_client: Any, live_clock: FixedClock, problem: str, jwks: Any
) -> None:
    client = {**api_client(keys), "jwks": jwks(keys)}
    settings = settings_from_mapping(config_with(client), {"SHOP_SECRET": SHOP_SECRET}, "test")
    services = build_services(settings, clock=live_clock, redis_client=redis_client)

    with pytest.raises(ConfigError) as raised:
        create_app(settings, services)

    assert "client 'api' jwks" in str(raised.value)
    assert problem in str(raised.value)


def test_discovery_lists_private_key_jwt_and_its_algorithms(app: Flask) -> None:
    document = app.test_client().get("/.well-known/openid-configuration", base_url=ISSUER).json
    algorithms = ["RS256", "PS256", "ES256", "EdDSA", "Ed25519"]

    for endpoint in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert "private_key_jwt" in document[f"{endpoint}_auth_methods_supported"]
        assert document[f"{endpoint}_auth_signing_alg_values_supported"] == algorithms
