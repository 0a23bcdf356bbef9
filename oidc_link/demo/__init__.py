"""The demo: the provider in sandbox mode and a sample relying party, served side by side.

Both bind to loopback; the provider keeps its state in an embedded Redis for this process only.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, make_server

from oidc_link.config import Settings, settings_from_mapping

if TYPE_CHECKING:
    from oidc_link.outbox.runner import OutboxRunner

log = logging.getLogger(__name__)

DEMO_EMAIL = "jenny@example.com"
DEMO_PHONE = "+14155550123"
DEMO_NAME = "Jenny Rosen"
DEMO_CLIENT_ID = "demo-rp"
# The shop's brand for `oidc-link demo --brand`. Every address of a brand must be https and
# the demo is loopback http, so its policy and terms live at a reserved name (RFC 2606
# .example: the links go nowhere) and it has no logo; docs/screenshots/take.py adds one,
# which its browser serves itself.
DEMO_BRAND: Mapping[str, str] = {
    "accent_color": "#9d174d",
    "policy_uri": "https://demo-shop.example/privacy",
    "tos_uri": "https://demo-shop.example/terms",
}


def demo_settings(
    provider_url: str, rp_url: str, client_options: Mapping[str, Any] | None = None
) -> Settings:
    """Sandbox settings with one test user and one confidential client, ``demo-rp``;
    ``client_options`` are more of its ``[[clients]]`` fields (a brand, ``third_party``),
    checked like any configuration's."""
    data = {
        "issuer": provider_url,
        "link": {
            "mode": "sandbox",
            "sandbox": {"users": [{"email": DEMO_EMAIL, "phone": DEMO_PHONE, "name": DEMO_NAME}]},
        },
        "clients": [
            {
                "client_id": DEMO_CLIENT_ID,
                "name": "Demo Shop",
                "client_secret": secrets.token_urlsafe(32),
                "redirect_uris": [rp_url + "/callback"],
                "post_logout_redirect_uris": [rp_url + "/signed-out"],
                "token_endpoint_auth_method": "client_secret_basic",
                **(client_options or {}),
            }
        ],
    }
    # A throwaway key-encryption key: the demo's keys live in this process only anyway.
    data["keys"] = {"encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}
    log.warning("Demo: generated a throwaway key-encryption key; keys vanish when it stops.")
    # An empty environment: the demo is self-contained, whatever REDIS_URL the shell has.
    return settings_from_mapping(data, {}, "demo")


@dataclass
class RunningDemo:
    provider_url: str
    rp_url: str
    settings: Settings
    _servers: list[BaseWSGIServer] = field(repr=False)
    _threads: list[threading.Thread] = field(repr=False)
    # The provider's outbox relay and delivery threads (oidc_link/outbox/).
    _outbox: OutboxRunner | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop both servers, the outbox and their threads; safe to call twice."""
        if self._outbox is not None:
            self._outbox.stop()
            self._outbox = None
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._servers.clear()
        self._threads.clear()


def start_demo(
    host: str = "127.0.0.1",
    provider_port: int = 0,
    rp_port: int = 0,
    announce: Callable[[str], None] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> RunningDemo:
    """Serve the provider and the sample RP in daemon threads; port 0 picks a free port.

    ``announce`` receives the sandbox console lines (the verification codes);
    ``client_options`` go into the demo client's configuration (see demo_settings).
    """
    from oidc_link import create_app
    from oidc_link.demo.rp import create_rp_app
    from oidc_link.services import build_services

    if not _is_loopback(host):
        raise ValueError(f"the demo serves on loopback only (such as 127.0.0.1), not {host!r}")
    # Bind first, so that port 0 becomes a real port before the URLs go into the settings;
    # the apps are attached once they exist.
    provider_server = make_server(host, provider_port, _not_ready, threaded=True)
    try:
        rp_server = make_server(host, rp_port, _not_ready, threaded=True)
    except BaseException:
        provider_server.server_close()
        raise
    servers = [provider_server, rp_server]
    try:
        provider_url = _base_url(host, provider_server.server_port)
        rp_url = _base_url(host, rp_server.server_port)
        settings = demo_settings(provider_url, rp_url, client_options)
        services = build_services(settings, announce=announce)
        provider_server.app = create_app(settings, services)
        client = settings.clients[0]
        rp_server.app = create_rp_app(
            provider_url, client.client_id, client.client_secret or "", rp_url
        )
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    threads = [
        threading.Thread(target=server.serve_forever, name=name, daemon=True)
        for server, name in ((provider_server, "demo-provider"), (rp_server, "demo-rp"))
    ]
    for thread in threads:
        thread.start()
    services.outbox.start()
    return RunningDemo(provider_url, rp_url, settings, servers, threads, services.outbox)


def run_demo(
    host: str = "127.0.0.1", provider_port: int = 0, rp_port: int = 0, *, brand: bool = False
) -> None:
    """Start the demo, print what to do, and serve until Ctrl-C; ``brand`` gives the shop
    DEMO_BRAND on its sign-in pages."""

    def announce(line: str) -> None:
        print(f"\n    {line}\n", flush=True)

    # One line per request would bury the instructions and the codes; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    options = DEMO_BRAND if brand else None
    demo = start_demo(host, provider_port, rp_port, announce=announce, client_options=options)
    print(
        f"""
oidc-link demo (sandbox mode: no real SMS is sent)

  Provider (issuer):  {demo.provider_url}
  Sample shop (RP):   {demo.rp_url}

  1. Open {demo.rp_url} in your browser and click "Log in with Link".
  2. Type the email {DEMO_EMAIL}.
  3. Type the code printed below in this console (or the magic code 000000).
  4. You are back at the shop, which shows the claims of the verified ID token.

  Another language: {demo.rp_url}/login?ui_locales=fr (or de, ja, pt-BR, ...).

Press Ctrl-C to stop.
""",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopping the demo.", flush=True)
    finally:
        demo.stop()


def _not_ready(environ: dict, start_response: Callable) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
