"""Single sign-on: one SMS sign-in, then every client in the same browser without another,
unless the relying party asks for a fresh login (OIDC Core §3.1.2.1)."""

from __future__ import annotations

from flask import Flask
from werkzeug.test import TestResponse

from oidc_link.clock import FixedClock
from tests.conftest import ISSUER, ON_REDIS_CLUSTER, POST_SECRET, SPA_CALLBACK
from tests.relying_party import Browser, RelyingParty, query_of
from tests.test_oidc_flow import sign_in

# On a real Redis Cluster too (issue 17 item 3).
pytestmark = ON_REDIS_CLUSTER


def blog(app: Flask) -> RelyingParty:
    return RelyingParty(
        app, ISSUER, "blog", "https://blog.example.test/auth", POST_SECRET, "client_secret_post"
    )


def authorize(browser: Browser, rp: RelyingParty, **extra: str):
    """Send the browser to /authorize; returns our answer (a redirect or a page)."""
    request = rp.authorization_request(**extra)
    return request, browser.get(request.url)


def shows_the_email_page(answer: TestResponse) -> bool:
    """/authorize answered with a new sign-in's email page (no session could answer)."""
    page = answer.get_data(as_text=True)
    return answer.status_code == 200 and 'name="email"' in page and 'action="/signin/' in page


def signed_in_browser(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> dict[str, object]:
    request, callback = sign_in(browser, shop, console)
    return shop.validate_id_token(shop.exchange(callback, request), request.nonce)


def test_a_second_client_signs_in_without_a_new_sms_and_keeps_the_real_auth_time(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    first = signed_in_browser(app, browser, shop, console)
    live_clock.advance(60)
    other = blog(app)

    request, answer = authorize(browser, other)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("https://blog.example.test/auth?")
    claims = other.validate_id_token(
        other.exchange(answer.headers["Location"], request), request.nonce
    )
    assert claims["auth_time"] == first["auth_time"]
    assert claims["sub"] != first["sub"]  # pairwise per client
    assert len(console) == 1


def test_the_session_cookie_is_secure_httponly_and_lax(
    browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request = shop.authorization_request()
    browser.start(request.url)
    browser.submit("/email", email="jenny@example.com")
    answer = browser.submit("/code", code=console[-1].rsplit(" ", 1)[-1])

    cookie = next(
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith("__Host-oidc_link_session=")
    )
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_prompt_login_asks_for_a_new_sign_in(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in_browser(app, browser, shop, console)

    _, answer = authorize(browser, shop, prompt="login")

    assert shows_the_email_page(answer)


def test_max_age_zero_or_exceeded_asks_for_a_new_sign_in_and_within_it_does_not(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    signed_in_browser(app, browser, shop, console)
    live_clock.advance(300)

    assert shows_the_email_page(authorize(browser, shop, max_age="0")[1])
    assert shows_the_email_page(authorize(browser, shop, max_age="299")[1])
    assert authorize(browser, shop, max_age="301")[1].status_code == 302


def test_prompt_none_answers_from_the_session_or_says_login_required(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    request, answer = authorize(Browser(app, ISSUER), shop, prompt="none")
    assert query_of(answer.headers["Location"])["error"] == "login_required"
    assert query_of(answer.headers["Location"])["state"] == request.state

    signed_in_browser(app, browser, shop, console)
    _, answer = authorize(browser, shop, prompt="none")

    assert answer.status_code == 302
    assert "code" in query_of(answer.headers["Location"])


def test_an_id_token_hint_must_name_the_signed_in_user(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in_browser(app, browser, shop, console)
    request, answer = authorize(browser, shop)
    token = shop.exchange(answer.headers["Location"], request)["id_token"]

    _, matching = authorize(browser, shop, prompt="none", id_token_hint=token)
    assert "code" in query_of(matching.headers["Location"])

    stranger = Browser(app, ISSUER)
    request, callback = sign_in(stranger, shop, console, login_hint="sam@example.com")
    sams_token = shop.exchange(callback, request)["id_token"]
    _, other_user = authorize(browser, shop, prompt="none", id_token_hint=sams_token)
    assert query_of(other_user.headers["Location"])["error"] == "login_required"

    _, garbage = authorize(browser, shop, prompt="none", id_token_hint="not-a-token")
    assert query_of(garbage.headers["Location"])["error"] == "login_required"


def test_unsupported_prompt_values_and_bad_max_age_are_invalid_requests(
    app: Flask, browser: Browser, shop: RelyingParty
) -> None:
    for extra in ({"prompt": "magic"}, {"prompt": "none login"}, {"max_age": "soon"}):
        _, answer = authorize(browser, shop, **extra)
        assert query_of(answer.headers["Location"])["error"] == "invalid_request", extra


def test_the_session_ends_after_its_idle_time_and_after_its_absolute_lifetime(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    sign_in(browser, shop, console)
    live_clock.advance(86_399)
    assert authorize(browser, shop)[1].status_code == 302  # used: idle time starts again
    live_clock.advance(86_401)
    assert shows_the_email_page(authorize(browser, shop)[1])

    sign_in(browser, shop, console)
    for _ in range(7):  # 7 x 80 000 s: active every day, still under seven days
        live_clock.advance(80_000)
        assert authorize(browser, shop)[1].status_code == 302
    live_clock.advance(80_000)
    assert shows_the_email_page(authorize(browser, shop)[1])  # seven days after the SMS


def test_an_authorize_the_session_does_not_answer_still_renews_its_idle_time(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str], live_clock: FixedClock
) -> None:
    sign_in(browser, shop, console)
    stranger = shop.authorization_request(redirect_uri="https://evil.example.test/cb")
    answers = [
        lambda: shows_the_email_page(authorize(browser, shop, prompt="login")[1]),
        lambda: "error=" in authorize(browser, shop, prompt="magic")[1].headers["Location"],
        lambda: browser.get(stranger.url).status_code == 400,  # an error page, no redirect
    ]
    for answer in answers:  # each a day less a second after the last use
        live_clock.advance(86_399)
        assert answer()
    live_clock.advance(86_399)
    assert authorize(browser, shop)[1].status_code == 302  # still signed in


def test_a_public_client_benefits_from_the_session_too(
    app: Flask, browser: Browser, shop: RelyingParty, console: list[str]
) -> None:
    signed_in_browser(app, browser, shop, console)
    spa = RelyingParty(app, ISSUER, "spa", SPA_CALLBACK, auth_method="none")

    request, answer = authorize(browser, spa)

    token = spa.exchange(answer.headers["Location"], request)
    assert spa.validate_id_token(token, request.nonce)["aud"] == "spa"
