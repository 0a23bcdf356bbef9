"""Records what one landed version of oidc-link writes to Redis, for tests/test_stored_layout.py.

Run it ONCE against a checkout of that version, never against today's code (whose store is
what the recording checks). For 868ada5 it was run like this:

    mkdir /tmp/old868 && git archive 868ada5 | tar -x -C /tmp/old868
    cd /tmp/old868 && python3 -m venv .venv && .venv/bin/pip install -e ".[test]"
    PYTHONPATH=/tmp/old868 /tmp/old868/.venv/bin/python tests/layouts/record_layout.py \
        tests/layouts/868ada5.json            # run from this repository's root

6490682 (issue 16's starting point) the same way, from /tmp/old649, into
tests/layouts/6490682.json; that recording also names the SSO cookie (by then
``__Host-oidc_link_session``). 1fcd0cc (issue 17's starting point: the last layout without
hash tags) from /tmp/k-old1fc into tests/layouts/1fcd0cc.json; its app needs a client that
decodes answers, which the recorder gives it since then (earlier versions work with either).

It builds that version's app (its ``build_services``/``create_app``) on fakeredis with the
fixed configuration below and a FixedClock, and drives it over HTTP only: a sign-in at a
first-party client with offline_access (refresh token, SSO session), a third-party client's
consent given through the same SSO session, a /v1 account created with an Idempotency-Key,
an Account Link, and the signing key ring made at start. Nothing is left half-done: no
pending sign-in is recorded (those may be lost on an upgrade). Then every key is dumped with
its type, value and remaining TTL, with the bearer values a reader needs (test secrets).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import fakeredis
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

# The version under record: these names are its API, not necessarily today's.
from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config import settings_from_mapping
from oidc_link.ids import digest
from oidc_link.services import build_services

ISSUER = "https://login.example.test"
RECORDED_AT = 1_800_000_000
JENNY = "jenny@example.com"
# Onboarded by the Account Link: not Jenny, whose email her sign-in already tied to an account.
SAM = "sam@example.com"
SHOP_CALLBACK = "https://shop.example.test/callback"
PARTNER_CALLBACK = "https://partner.example.test/callback"
SHOP_SECRET = "shop-secret-0123456789abcdef-0123456789"
PARTNER_SECRET = "partner-secret-0123456789abcdef-01234567"
SHOP_API_KEY = "sk_test_shop_4eC39HqLyjWDarjtT1zdp7dc"
IDEMPOTENCY_KEY = "order-6735"
# RFC 7636 Appendix B's pair: every client of today's code must send PKCE.
PKCE_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
PKCE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
OFFLINE = "openid email profile offline_access"

# Kept in the recording, so that the reader builds today's app from the very same mapping.
CONFIG: dict[str, Any] = {
    "issuer": ISSUER,
    "subject_salt": "layout-subject-salt",
    "keys": {"encryption_key": base64.urlsafe_b64encode(bytes(range(32))).decode()},
    "link": {
        "mode": "sandbox",
        "sandbox": {
            "users": [
                {"email": JENNY, "phone": "+14155550123", "name": "Jenny Rosen"},
                {"email": SAM, "phone": "+447700900123"},
            ]
        },
    },
    "clients": [
        {
            "client_id": "shop",
            "client_secret": SHOP_SECRET,
            "redirect_uris": [SHOP_CALLBACK],
            "name": "Example Shop",
            "api_keys": [digest(SHOP_API_KEY)],
        },
        {
            "client_id": "partner",
            "client_secret": PARTNER_SECRET,
            "redirect_uris": [PARTNER_CALLBACK],
            "name": "Partner App",
            "third_party": True,
        },
    ],
}


class Browser:
    """Cookies and forms on the hosted pages, through a Flask test client."""

    def __init__(self, app: Flask) -> None:
        self.client: FlaskClient = app.test_client()
        self.page: TestResponse | None = None

    def get(self, url: str) -> TestResponse:
        parts = urlsplit(url)
        self.page = self.client.get(parts.path, query_string=parts.query, base_url=ISSUER)
        return self.page

    def follow(self, answer: TestResponse) -> TestResponse:
        """Follow redirects to our own pages; stop at one to a relying party."""
        while answer.status_code in (302, 303):
            location = answer.headers["Location"]
            if not (location.startswith("/") or location.startswith(ISSUER)):
                break
            answer = self.get(location)
        return answer

    def submit(self, action_suffix: str, **fields: str) -> TestResponse:
        assert self.page is not None
        soup = BeautifulSoup(self.page.get_data(as_text=True), "html.parser")
        form = next(f for f in soup.find_all("form") if f.get("action", "").endswith(action_suffix))
        data = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
        data.update(fields)
        self.page = self.client.post(form["action"], data=data, base_url=ISSUER)
        return self.follow(self.page)

    def cookie(self, *names: str) -> tuple[str, str]:
        """The first of ``names`` the browser holds, and its value."""
        for name in names:
            found = self.client.get_cookie(name, domain="login.example.test")
            if found is not None:
                return name, found.value
        raise AssertionError(f"none of the cookies {names}")


def authorize_url(client_id: str, redirect_uri: str, scope: str, tag: str) -> str:
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": f"state-{tag}",
        "nonce": f"nonce-{tag}",
        "code_challenge": PKCE_CHALLENGE,
        "code_challenge_method": "S256",
    }
    return "/authorize?" + urlencode(query)


def code_of(callback: TestResponse, redirect_uri: str) -> str:
    location = callback.headers["Location"]
    assert callback.status_code == 302 and location.startswith(redirect_uri), location
    return parse_qs(urlsplit(location).query)["code"][0]


def exchange(app: Flask, code: str, client: tuple[str, str], redirect_uri: str) -> dict:
    answer = app.test_client().post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": PKCE_VERIFIER,
        },
        auth=client,
        base_url=ISSUER,
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def sign_in(app: Flask, browser: Browser, console: list[str]) -> dict:
    """Jenny signs in at the shop by SMS, asking for offline_access: tokens and a session."""
    browser.follow(browser.get(authorize_url("shop", SHOP_CALLBACK, OFFLINE, "shop")))
    browser.submit("/email", email=JENNY)
    match = re.search(r"\b(\d{6})$", console[-1])
    assert match is not None, "the sandbox announced no code"
    callback = browser.submit("/code", code=match.group(1))
    return exchange(app, code_of(callback, SHOP_CALLBACK), ("shop", SHOP_SECRET), SHOP_CALLBACK)


def consent(app: Flask, browser: Browser) -> dict:
    """The same browser signs in at the third-party partner: no SMS, but Allow, remembered."""
    page = browser.follow(
        browser.get(authorize_url("partner", PARTNER_CALLBACK, "openid email", "p"))
    )
    assert page.status_code == 200 and "/allow" in page.get_data(as_text=True), page.status
    callback = browser.submit("/allow")
    code = code_of(callback, PARTNER_CALLBACK)
    return exchange(app, code, ("partner", PARTNER_SECRET), PARTNER_CALLBACK)


def platform_calls(app: Flask) -> dict[str, Any]:
    """A /v1 account created with an Idempotency-Key, and an Account Link for it."""
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {SHOP_API_KEY}"}
    params = {"type": "express", "email": SAM, "metadata[order]": "6735"}
    created = api.post(
        "/v1/accounts",
        data=params,
        headers={**bearer, "Idempotency-Key": IDEMPOTENCY_KEY},
        base_url=ISSUER,
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    account = created.get_json()
    account_link = api.post(
        "/v1/account_links",
        data={
            "account": account["id"],
            "type": "account_onboarding",
            "refresh_url": "https://shop.example.test/onboarding/refresh",
            "return_url": "https://shop.example.test/onboarding/done",
        },
        headers=bearer,
        base_url=ISSUER,
    )
    assert account_link.status_code == 200, account_link.get_data(as_text=True)
    return {
        "account_params": params,
        "account": account,
        "account_link": account_link.get_json(),
    }


def encoded(value: bytes) -> Any:
    """Text as itself; anything that is not UTF-8 as {"base64": ...}."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def dump(client: fakeredis.FakeRedis) -> dict[str, Any]:
    """Every key: its type, value and remaining TTL in milliseconds (None: no TTL)."""
    records: dict[str, Any] = {}
    for raw_key in sorted(client.scan_iter(count=1000)):
        kind = client.type(raw_key).decode()
        if kind == "string":
            value: Any = encoded(client.get(raw_key))
        elif kind == "hash":
            value = {encoded(k): encoded(v) for k, v in sorted(client.hgetall(raw_key).items())}
        elif kind == "set":
            value = sorted(encoded(m) for m in client.smembers(raw_key))
        elif kind == "zset":
            value = [[encoded(m), s] for m, s in client.zrange(raw_key, 0, -1, withscores=True)]
        elif kind == "list":
            value = [encoded(item) for item in client.lrange(raw_key, 0, -1)]
        else:
            raise SystemExit(f"{raw_key!r}: type {kind} is not recorded yet; teach dump() it")
        ttl = client.pttl(raw_key)
        records[encoded(raw_key)] = {
            "type": kind,
            "value": value,
            "ttl_ms": ttl if ttl > 0 else None,
        }
    return records


def main(out: str) -> None:
    import oidc_link

    here = Path(__file__).resolve().parents[2]
    if Path(oidc_link.__file__).resolve().is_relative_to(here):
        raise SystemExit(f"{oidc_link.__file__} is today's code: put the old checkout first")
    print("recording", oidc_link.__file__)
    settings = settings_from_mapping(CONFIG, {}, "layout recording")
    # The app talks to Redis as production does (text answers, since 1fcd0cc's time a
    # need); the dump reads the same server as bytes, so nothing is decoded on the way.
    server = fakeredis.FakeServer()
    redis_client = fakeredis.FakeRedis(server=server)
    app_client = fakeredis.FakeRedis(server=server, decode_responses=True)
    clock = FixedClock(RECORDED_AT)
    console: list[str] = []
    services = build_services(
        settings, clock=clock, redis_client=app_client, announce=console.append
    )
    app = create_app(settings, services)
    browser = Browser(app)
    shop_tokens = sign_in(app, browser, console)
    partner_tokens = consent(app, browser)
    platform = platform_calls(app)
    jwks = app.test_client().get("/jwks.json", base_url=ISSUER).get_json()
    # 868ada5 named it oidc_link_session; later versions __Host-oidc_link_session (https).
    cookie_name, cookie = browser.cookie("__Host-oidc_link_session", "oidc_link_session")
    recording = {
        "version": Path(out).stem,  # named after the commit recorded
        "recorded_at": clock.now(),
        "config": CONFIG,
        "bearer": {
            "shop_secret": SHOP_SECRET,
            "partner_secret": PARTNER_SECRET,
            "api_key": SHOP_API_KEY,
            "idempotency_key": IDEMPOTENCY_KEY,
            "session_cookie": cookie,
            "session_cookie_name": cookie_name,
            "pkce_verifier": PKCE_VERIFIER,
            "pkce_challenge": PKCE_CHALLENGE,
        },
        "shop_tokens": shop_tokens,
        "partner_tokens": partner_tokens,
        **platform,
        "jwks": jwks,
        "records": dump(redis_client),
    }
    Path(out).write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {len(recording['records'])} keys from {recording['version']}")
    print("sha256", hashlib.sha256(Path(out).read_bytes()).hexdigest())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/layouts/868ada5.json")
