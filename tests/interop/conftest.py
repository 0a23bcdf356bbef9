"""Fixtures of the interop tests: the live provider with an interop client, the RP's landing
pages, a person on the hosted pages, and the Node relying party built on openid-client.

The provider keeps its state in a real redis-server: these tests are about clients we did
not write against the server as it runs in production (threads, sockets, real Redis); the
storage itself is covered on fakeredis and redis-server by the fast tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.interop.person import Person
from tests.live_server import (
    LiveServer,
    RelyingPartyServer,
    start_live_server,
    start_relying_party_server,
)

# CI sets this so that a missing Node.js or openid-client fails the run instead of skipping.
REQUIRE_INTEROP = os.environ.get("OIDC_LINK_TEST_INTEROP") == "required"
NODE_PROJECT = Path(__file__).resolve().parent / "node"
NODE_SCRIPT = NODE_PROJECT / "relying_party.mjs"

INTEROP_CLIENT_ID = "interop"
INTEROP_SECRET = "interop-secret-0123456789abcdef"
INTEROP_SCOPE = "openid email profile offline_access"


@dataclass(frozen=True)
class InteropClient:
    """The registration the client libraries use, as they would be configured with it."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    scope: str


@pytest.fixture
def interop_redis(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def relying_party_server() -> Iterator[RelyingPartyServer]:
    server = start_relying_party_server()
    yield server
    server.stop()


@pytest.fixture
def live_server(
    interop_redis: redis.Redis, relying_party_server: RelyingPartyServer
) -> Iterator[LiveServer]:
    registration = {
        "client_id": INTEROP_CLIENT_ID,
        "client_secret": INTEROP_SECRET,
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": [relying_party_server.url + "/callback"],
        "post_logout_redirect_uris": [relying_party_server.url + "/logged-out"],
        "scopes": ["openid", "email", "profile", "offline_access"],
        "name": "Interop RP",
    }
    server = start_live_server(interop_redis, [registration])
    yield server
    server.stop()


@pytest.fixture
def interop_client(
    live_server: LiveServer, relying_party_server: RelyingPartyServer
) -> InteropClient:
    return InteropClient(
        issuer=live_server.url,
        client_id=INTEROP_CLIENT_ID,
        client_secret=INTEROP_SECRET,
        redirect_uri=relying_party_server.url + "/callback",
        post_logout_redirect_uri=relying_party_server.url + "/logged-out",
        scope=INTEROP_SCOPE,
    )


@pytest.fixture
def person(live_server: LiveServer) -> Person:
    return Person(live_server.console)


@pytest.fixture(scope="session")
def node() -> str:
    """Node.js with the locked openid-client installed (``npm ci`` in tests/interop/node)."""
    executable = shutil.which("node")
    problem = None
    if executable is None:
        problem = "Node.js is not installed"
    elif not (NODE_PROJECT / "node_modules" / "openid-client" / "package.json").is_file():
        problem = f"openid-client is not installed: run `npm ci` in {NODE_PROJECT}"
    if problem is not None:
        if REQUIRE_INTEROP:
            pytest.fail(f"{problem} (OIDC_LINK_TEST_INTEROP=required)")
        pytest.skip(f"{problem}; CI installs it")
    assert executable is not None
    return executable


@pytest.fixture
def openid_client(node: str, interop_client: InteropClient) -> Callable[..., dict[str, Any]]:
    """Run one step of the Node relying party with the interop registration and ``inputs``."""

    def run(step: str, **inputs: Any) -> dict[str, Any]:
        request = {
            "step": step,
            "issuer": interop_client.issuer,
            "client_id": interop_client.client_id,
            "client_secret": interop_client.client_secret,
            "redirect_uri": interop_client.redirect_uri,
            "scope": interop_client.scope,
            **inputs,
        }
        finished = subprocess.run(
            [node, str(NODE_SCRIPT)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=NODE_PROJECT,
            check=False,
        )
        try:
            answer = json.loads(finished.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"openid-client step {step!r} printed no JSON: {finished.stderr}")
        assert finished.returncode == 0, f"openid-client step {step!r} failed: {answer}"
        return answer

    return run
