"""The sandbox under ``oidc-link serve --allow-sandbox`` (2 granian workers, a real Redis):
every step of a sign-in works whichever worker takes it, as its Link sessions are in Redis."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from bs4 import BeautifulSoup

from tests.conftest import SHOP_CALLBACK, SHOP_SECRET
from tests.redis_process import RedisProcess, stoppable_redis
from tests.test_serve import Served, free_port, sandbox_config, serve


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    data = tmp_path / "redis"
    data.mkdir()
    with stoppable_redis(data) as process:
        yield process


def test_twenty_sandbox_sign_ins_finish_through_two_workers_with_a_new_connection_each(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    """Each request on a connection of its own, as browsers often do, lands on either
    worker: the sandbox's Link sessions are in Redis, so every step works on both."""
    served = serve(tmp_path, sandbox_config(free_port(), redis_server.url), "--allow-sandbox")
    try:
        assert len(served.workers()) == 2
        signed_in = [_sandbox_sign_in(served) for _ in range(20)]
    finally:
        assert served.stop() == 0

    assert signed_in == ["jenny@example.com"] * 20


# No keep-alive: every request opens a connection of its own, which either worker may accept.
CLOSE = {"Connection": "close"}
SANDBOX_CODE = re.compile(r"Link verification code for jenny@example\.com: (\d{6})")


def _sandbox_sign_in(served: Served) -> str:
    """One whole sign-in of the sandbox's Jenny with the code it printed, then the code
    exchange at /token; the ID token's email."""
    base = served.url
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "shop",
            "redirect_uri": SHOP_CALLBACK,
            "scope": "openid email",
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )
    page = requests.get(f"{base}/authorize?{query}", headers=CLOSE, timeout=5)
    assert page.status_code == 200, page.text
    cookies = dict(page.cookies)

    def post(form: Any, **fields: str) -> requests.Response:
        token = form.find("input", attrs={"name": "csrf_token"})["value"]
        answer = requests.post(
            urljoin(base, form["action"]),
            data={"csrf_token": token, **fields},
            cookies=cookies,
            headers=CLOSE,
            allow_redirects=False,
            timeout=10,
        )
        cookies.update(answer.cookies)
        return answer

    email_form = BeautifulSoup(page.text, "html.parser").find("form", method="post")
    sent = post(email_form, email="jenny@example.com")
    assert sent.status_code == 303, sent.text
    code_page = requests.get(
        urljoin(base, sent.headers["Location"]), cookies=cookies, headers=CLOSE, timeout=5
    )
    assert code_page.status_code == 200, code_page.text
    code_form = BeautifulSoup(code_page.text, "html.parser").find(
        "form", action=lambda action: action and action.endswith("/code")
    )
    code = SANDBOX_CODE.findall(served.output())[-1]
    answer = post(code_form, code=code)
    callback = answer.headers.get("Location", "")
    assert callback.startswith(SHOP_CALLBACK), answer.text
    tokens = requests.post(
        base + "/token",
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(callback).query)["code"][0],
            "redirect_uri": SHOP_CALLBACK,
            "code_verifier": verifier,
        },
        auth=("shop", SHOP_SECRET),
        headers=CLOSE,
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    claims = tokens.json()["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["email"]
