"""The token endpoint: codes are short-lived, bound and single-use; clients must authenticate."""

from __future__ import annotations

import base64
import hashlib

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from tests.conftest import ISSUER, POST_SECRET, SHOP_CALLBACK, SHOP_SECRET, SPA_CALLBACK
from tests.relying_party import Browser, RelyingParty, query_of
from tests.test_oidc_flow import sign_in

VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


def issued_code(app: Flask, console: list[str], client_id: str = "shop", **extra: str) -> str:
    """Sign Jenny in at ``client_id`` and return the authorization code."""
    callbacks = {"shop": SHOP_CALLBACK, "spa": SPA_CALLBACK}
    browser = Browser(app, ISSUER)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": callbacks[client_id],
        "scope": "openid email",
        "state": "s",
        **extra,
    }
    browser.start("/authorize?" + "&".join(f"{k}={v}" for k, v in params.items()))
    browser.submit("/email", email="jenny@example.com")
    answer = browser.submit("/code", code="000000")
    return query_of(answer.headers["Location"])["code"]


def redeem(
    app: Flask, code: str, auth: tuple[str, str] | None = ("shop", SHOP_SECRET), **form: str
):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": SHOP_CALLBACK, **form}
    return app.test_client().post("/token", data=data, auth=auth, base_url=ISSUER)


def error_of(answer: TestResponse) -> str:
    return answer.get_json()["error"]


def test_a_code_can_be_redeemed_only_once(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    first = redeem(app, code)
    second = redeem(app, code)

    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    assert second.status_code == 400
    assert error_of(second) == "invalid_grant"


def test_a_code_expires_after_sixty_seconds(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    code = issued_code(app, console)
    live_clock.advance(60)

    assert error_of(redeem(app, code)) == "invalid_grant"


def test_a_code_redeemed_within_its_lifetime_works(
    app: Flask, console: list[str], live_clock: FixedClock
) -> None:
    code = issued_code(app, console)
    live_clock.advance(59)

    assert redeem(app, code).status_code == 200


def test_a_code_is_bound_to_its_client(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, auth=None, client_id="blog", client_secret=POST_SECRET)

    assert error_of(answer) == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri(app: Flask, console: list[str]) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, redirect_uri=SHOP_CALLBACK + "/other")

    assert error_of(answer) == "invalid_grant"


def test_a_code_is_bound_to_its_pkce_challenge(app: Flask, console: list[str]) -> None:
    code = issued_code(
        app, console, code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )

    assert error_of(redeem(app, code, code_verifier="w" * 50)) == "invalid_grant"


def test_a_code_issued_with_pkce_needs_the_verifier(app: Flask, console: list[str]) -> None:
    code = issued_code(
        app, console, code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )

    assert error_of(redeem(app, code)) == "invalid_request"


def test_a_confidential_client_may_use_pkce_too(app: Flask, console: list[str]) -> None:
    code = issued_code(
        app, console, code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )

    assert redeem(app, code, code_verifier=VERIFIER).status_code == 200


def test_a_public_client_redeems_with_its_verifier_and_no_secret(
    app: Flask, console: list[str]
) -> None:
    code = issued_code(
        app, console, "spa", code_challenge=CHALLENGE.decode(), code_challenge_method="S256"
    )

    answer = redeem(
        app, code, auth=None, client_id="spa", redirect_uri=SPA_CALLBACK, code_verifier=VERIFIER
    )

    assert answer.status_code == 200
    assert "id_token" in answer.get_json()


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("shop", "wrong-secret-0123456789"), {}),
        (("nobody", SHOP_SECRET), {}),
        (None, {"client_id": "shop", "client_secret": "wrong-secret-0123456789"}),
        (None, {"client_id": "shop"}),
        (None, {}),
        (None, {"client_id": "blog", "client_secret": "wrong-secret-0123456789"}),
        (("blog", POST_SECRET), {}),
    ],
    ids=[
        "basic-wrong-secret",
        "basic-unknown-client",
        "post-wrong-secret",
        "confidential-without-secret",
        "no-credentials",
        "post-client-wrong-secret",
        "post-client-using-basic",
    ],
)
def test_wrong_client_credentials_get_401_invalid_client(
    app: Flask, console: list[str], auth: tuple[str, str] | None, form: dict[str, str]
) -> None:
    code = issued_code(app, console)

    answer = redeem(app, code, auth=auth, **form)

    assert answer.status_code == 401
    assert error_of(answer) == "invalid_client"


def test_an_unsupported_grant_type_is_refused(app: Flask) -> None:
    answer = app.test_client().post(
        "/token",
        data={"grant_type": "password", "username": "u", "password": "p"},
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert answer.status_code == 400
    assert error_of(answer) == "unsupported_grant_type"


def test_a_missing_code_is_an_invalid_request(app: Flask) -> None:
    answer = app.test_client().post(
        "/token",
        data={"grant_type": "authorization_code", "redirect_uri": SHOP_CALLBACK},
        auth=("shop", SHOP_SECRET),
        base_url=ISSUER,
    )

    assert answer.status_code == 400
    assert error_of(answer) == "invalid_request"


def test_the_token_endpoint_only_accepts_post(app: Flask) -> None:
    answer = app.test_client().get("/token", base_url=ISSUER)

    assert answer.status_code == 405
    assert answer.is_json
    assert answer.headers["Allow"] == "OPTIONS, POST"  # RFC 9110 §15.5.6


def test_userinfo_without_a_token_asks_for_one(app: Flask) -> None:
    answer = app.test_client().get("/userinfo", base_url=ISSUER)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_userinfo_with_an_unknown_token_says_invalid_token(app: Flask) -> None:
    answer = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer nope"}, base_url=ISSUER
    )

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_userinfo_refuses_an_expired_access_token(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    request, callback = sign_in(browser, shop, console)
    token = shop.exchange(callback, request)
    live_clock.advance(3600)

    answer = shop.http.get(
        ISSUER + "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]}
    )

    assert answer.status_code == 401
