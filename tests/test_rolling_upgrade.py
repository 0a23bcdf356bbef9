"""A rolling upgrade from 1fcd0cc (the last release without hash-tagged keys) signs no one
out when this version runs with ``[redis] key_layout = "compatible"``: 1fcd0cc's own code,
extracted from git and served by a subprocess, and this version, served from this process,
share one redis-server, one configuration and one browser, and each uses what the other
wrote. Without the setting, the old instance refuses this version's tokens: the failure
docs/operations.md "Upgrading" warns about, and the reason for the setting.

Needs the git history (CI runs in a clone) and a redis-server. Real clock, short flows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis
import requests
from bs4 import BeautifulSoup
from requests.adapters import HTTPAdapter
from werkzeug.serving import BaseWSGIServer, make_server

from oidc_link import create_app
from oidc_link.config import settings_from_mapping
from oidc_link.services import build_services
from oidc_link.store import keyspace
from tests.conftest import ISSUER, JENNY, POST_SECRET, SHOP_CALLBACK, SHOP_SECRET, provider_config

OLD_VERSION = "1fcd0cc"
REPOSITORY = Path(__file__).resolve().parent.parent
HOST = urlsplit(ISSUER).hostname
BLOG_CALLBACK = "https://blog.example.test/auth"
ENVIRON = {"SHOP_SECRET": SHOP_SECRET}


def config(redis_url: str, key_layout: str | None) -> dict[str, Any]:
    """One configuration for every instance; ``key_layout`` only for this version's."""
    given = {**provider_config(), "redis_url": redis_url}
    if key_layout is not None:
        given["redis"] = {"key_layout": key_layout}
    return given


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1fcd0cc's package, templates and static files, from this repository's history."""
    tree = tmp_path_factory.mktemp(OLD_VERSION)
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", OLD_VERSION, "oidc_link", "templates", "static"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


@pytest.fixture(scope="module")
def shared_redis(redis_server_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    yield redis_server_url
    client.flushdb()
    client.close()


class OldInstance:
    """1fcd0cc serving over HTTP in a subprocess; ``codes`` reads what its sandbox sent."""

    def __init__(self, tree: Path, redis_url: str, workdir: Path) -> None:
        settings_file = workdir / "old-instance.json"
        given = {"config": config(redis_url, None), "environ": ENVIRON, "host": HOST}
        settings_file.write_text(json.dumps(given))
        script = Path(__file__).with_name("old_instance.py")
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(tree), str(settings_file)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=workdir,
        )
        # Its output, a line at a time, read by a thread: a test waits for a line with a
        # deadline, never for ever.
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next_line()
        assert first.isdigit(), f"the old instance did not start: {first!r}"
        self.url = f"http://127.0.0.1:{first}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def _next_line(self) -> str:
        try:
            return self._lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError("the old instance printed nothing in 30 s") from None

    def next_code(self) -> str:
        """The code of the SMS the sandbox sent last (it prints a line per SMS)."""
        line = self._next_line()
        while not self._lines.empty():  # an earlier test's SMS, never read
            line = self._next_line()
        assert "verification code" in line, line
        return line.rsplit(" ", 1)[-1]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class NewInstance:
    """This version serving over HTTP from a thread of this process."""

    def __init__(self, redis_url: str, key_layout: str) -> None:
        settings = settings_from_mapping(config(redis_url, key_layout), ENVIRON, "new instance")
        self.console: list[str] = []
        app = create_app(settings, build_services(settings, announce=self.console.append))

        def behind_proxy(environ: dict[str, Any], start_response: Any) -> Any:
            environ["wsgi.url_scheme"] = "https"
            environ["HTTP_HOST"] = HOST
            return app(environ, start_response)

        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, behind_proxy, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_code(self) -> str:
        return self.console[-1].rsplit(" ", 1)[-1]

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def old(
    old_tree: Path, shared_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OldInstance]:
    instance = OldInstance(old_tree, shared_redis, tmp_path_factory.mktemp("old"))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def compatible(shared_redis: str, old: OldInstance) -> Iterator[NewInstance]:
    instance = NewInstance(shared_redis, "compatible")
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def tagged(shared_redis: str, old: OldInstance) -> Iterator[NewInstance]:
    instance = NewInstance(shared_redis, "tagged")
    yield instance
    instance.stop()


class ToInstance(HTTPAdapter):
    """The load balancer: sends what is addressed to the issuer to one instance (``target``),
    with the issuer's Host; cookies stay the issuer's, as the browser keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.target = ""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        forwarded = request.copy()
        forwarded.url = self.target + (request.url or "").removeprefix(ISSUER)
        forwarded.headers["Host"] = HOST
        response = super().send(forwarded, **kwargs)
        response.url = request.url or ""
        return response


class Visitor:
    """A person's browser (one cookie jar) and the relying parties' back channels, behind a
    load balancer whose next instance the test picks with ``at``."""

    def __init__(self) -> None:
        self.http = requests.Session()
        self.balancer = ToInstance()
        self.http.mount(ISSUER, self.balancer)

    def at(self, instance: OldInstance | NewInstance) -> Visitor:
        self.balancer.target = instance.url
        return self

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(ISSUER + path, allow_redirects=False, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(ISSUER + path, allow_redirects=False, timeout=10, **kwargs)

    def submit(
        self, page: requests.Response, action_suffix: str, **fields: str
    ) -> requests.Response:
        """Post the page's form whose action ends with ``action_suffix``; follow our 303."""
        soup = BeautifulSoup(page.text, "html.parser")
        form = next(f for f in soup.find_all("form") if f.get("action", "").endswith(action_suffix))
        data = {i["name"]: i.get("value", "") for i in form.find_all("input") if i.get("name")}
        answer = self.post(form["action"], data={**data, **fields})
        if answer.status_code == 303:
            return self.get(answer.headers["Location"].removeprefix(ISSUER))
        return answer


def authorize(
    visitor: Visitor, client_id: str, redirect_uri: str, scope: str
) -> tuple[requests.Response, str]:
    """The browser arrives at /authorize for ``client_id`` (PKCE); our answer and the verifier."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
    }
    return visitor.get("/authorize?" + urlencode(query)), verifier


def code_of(answer: requests.Response, redirect_uri: str) -> str:
    assert answer.status_code == 302, answer.text[:300]
    location = answer.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


def sign_in(visitor: Visitor, instance: OldInstance | NewInstance) -> tuple[str, str]:
    """Jenny signs in to the shop by SMS at ``instance``: the code and its verifier."""
    page, verifier = authorize(
        visitor.at(instance), "shop", SHOP_CALLBACK, "openid email offline_access"
    )
    assert page.status_code == 200 and 'name="email"' in page.text
    page = visitor.submit(page, "/email", email=JENNY)
    answer = visitor.submit(page, "/code", code=instance.next_code())
    return code_of(answer, SHOP_CALLBACK), verifier


def redeem(visitor: Visitor, code: str, verifier: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": SHOP_CALLBACK,
        "code_verifier": verifier,
    }
    return visitor.post("/token", data=form, auth=("shop", SHOP_SECRET))


def refresh(visitor: Visitor, refresh_token: str) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return visitor.post("/token", data=form, auth=("shop", SHOP_SECRET))


def userinfo(visitor: Visitor, access_token: str) -> requests.Response:
    return visitor.get("/userinfo", headers={"Authorization": "Bearer " + access_token})


def single_sign_on_to_blog(visitor: Visitor) -> dict[str, Any]:
    """The browser, already signed in, goes to the blog: no SMS; the blog's tokens."""
    answer, verifier = authorize(visitor, "blog", BLOG_CALLBACK, "openid email")
    code = code_of(answer, BLOG_CALLBACK)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": BLOG_CALLBACK,
        "code_verifier": verifier,
        "client_id": "blog",
        "client_secret": POST_SECRET,
    }
    issued = visitor.post("/token", data=form)
    assert issued.status_code == 200, issued.text
    return issued.json()


def test_tokens_issued_by_the_compatible_layout_refresh_on_1fcd0cc_and_back(
    old: OldInstance, compatible: NewInstance
) -> None:
    visitor = Visitor()
    code, verifier = sign_in(visitor, compatible)
    issued = redeem(visitor.at(compatible), code, verifier).json()
    assert userinfo(visitor.at(old), issued["access_token"]).json()["email"] == JENNY

    at_old = refresh(visitor.at(old), issued["refresh_token"])
    assert at_old.status_code == 200, at_old.text
    assert userinfo(visitor.at(compatible), at_old.json()["access_token"]).json()["email"] == JENNY

    back = refresh(visitor.at(compatible), at_old.json()["refresh_token"])
    assert back.status_code == 200, back.text
    assert keyspace.token_family(back.json()["refresh_token"]) is None
    assert refresh(visitor.at(old), back.json()["refresh_token"]).status_code == 200


def test_a_code_of_either_version_is_redeemed_by_the_other(
    old: OldInstance, compatible: NewInstance
) -> None:
    visitor = Visitor()
    code, verifier = sign_in(visitor, compatible)
    at_old = redeem(visitor.at(old), code, verifier)
    assert at_old.status_code == 200, at_old.text
    assert userinfo(visitor.at(compatible), at_old.json()["access_token"]).status_code == 200

    code, verifier = sign_in(Visitor(), old)
    at_new = redeem(visitor.at(compatible), code, verifier)
    assert at_new.status_code == 200, at_new.text
    assert refresh(visitor.at(old), at_new.json()["refresh_token"]).status_code == 200


@pytest.mark.parametrize("first", ["old", "compatible"])
def test_an_sso_session_made_by_either_version_signs_into_a_second_client_on_the_other(
    old: OldInstance, compatible: NewInstance, first: str
) -> None:
    made_by, used_at = (old, compatible) if first == "old" else (compatible, old)
    visitor = Visitor()
    code, verifier = sign_in(visitor, made_by)
    assert redeem(visitor.at(made_by), code, verifier).status_code == 200

    blog = single_sign_on_to_blog(visitor.at(used_at))
    assert userinfo(visitor.at(made_by), blog["access_token"]).json()["email"] == JENNY


def test_a_sign_in_begun_on_one_version_finishes_on_the_other(
    old: OldInstance, compatible: NewInstance
) -> None:
    visitor = Visitor()
    page, verifier = authorize(
        visitor.at(compatible), "shop", SHOP_CALLBACK, "openid email offline_access"
    )
    page = visitor.at(old).submit(page, "/email", email=JENNY)
    answer = visitor.at(compatible).submit(page, "/code", code=old.next_code())
    code = code_of(answer, SHOP_CALLBACK)
    assert redeem(visitor.at(old), code, verifier).status_code == 200


def test_without_the_setting_1fcd0cc_refuses_the_tokens_this_version_issues(
    old: OldInstance, tagged: NewInstance
) -> None:
    visitor = Visitor()
    code, verifier = sign_in(visitor, tagged)
    issued = redeem(visitor.at(tagged), code, verifier).json()
    assert keyspace.token_family(issued["refresh_token"]) is not None

    at_old = refresh(visitor.at(old), issued["refresh_token"])
    assert at_old.status_code == 400
    assert at_old.json()["error"] == "invalid_grant"
    assert userinfo(visitor.at(old), issued["access_token"]).status_code == 401
    # The same token still refreshes where this version serves: only the old one fails.
    assert refresh(visitor.at(tagged), issued["refresh_token"]).status_code == 200


def test_a_code_1fcd0cc_issued_is_redeemed_once_by_the_tagged_layout(
    old: OldInstance, tagged: NewInstance
) -> None:
    """Upgrading straight to the tagged layout keeps codes issued just before: read under
    their old names, and one presented again still revokes what it issued."""
    visitor = Visitor()
    code, verifier = sign_in(visitor, old)
    issued = redeem(visitor.at(tagged), code, verifier)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()

    # Presented again at an old instance (a rollback, or one not yet replaced).
    replayed = redeem(visitor.at(old), code, verifier)
    assert replayed.json()["error"] == "invalid_grant"
    assert userinfo(visitor.at(tagged), tokens["access_token"]).status_code == 401
    assert refresh(visitor.at(tagged), tokens["refresh_token"]).json()["error"] == "invalid_grant"
