"""docs/webhooks.md's Flask receiver works as printed (issue 18 item 2): its code, read from
the page, is served on a loopback port and takes real signed deliveries from the outbox's
relay and worker; a delivery signed with another secret is refused with a 400 and retried."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from werkzeug.serving import make_server

from oidc_link import create_app
from oidc_link.clock import FixedClock
from oidc_link.config.webhooks import WebhookEndpoint
from oidc_link.outbound import Outbound
from oidc_link.webhooks.delivery import Outcome, WebhookSender
from tests.api_client import SHOP_KEY, Platform, api_config
from tests.test_webhooks_through_the_worker import (
    HOOK_SECRET,
    hooked,
    nothing_left,
    run_outbox,
    services_for,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


def receiver_example() -> str:
    """The page's Python block that follows "A receiver in Flask:"."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"A receiver in Flask:\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, "docs/webhooks.md has no Flask receiver example"
    return found.group(1)


class PlatformCode:
    """What the example leaves to the platform's own code: it records what it was asked."""

    def __init__(self) -> None:
        self.updated: list[tuple[str, str]] = []
        self.forgotten: list[str] = []

    def update_local_account(self, account_id: str, *, email: str) -> None:
        self.updated.append((account_id, email))

    def forget_account(self, account_id: str) -> None:
        self.forgotten.append(account_id)


@pytest.fixture
def served_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, PlatformCode]]:
    """The example's app on a loopback port; its URL and what it did."""
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", HOOK_SECRET)
    own = PlatformCode()
    namespace: dict[str, Any] = {
        "__name__": "receiver_example",
        "update_local_account": own.update_local_account,
        "forget_account": own.forget_account,
    }
    exec(compile(receiver_example(), str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    server = make_server("127.0.0.1", 0, namespace["app"], threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/oidc-link", own
    server.shutdown()
    thread.join(timeout=10)


def test_the_docs_flask_receiver_takes_real_signed_deliveries_and_acts_on_them(
    served_example: tuple[str, PlatformCode], redis_client: redis.Redis, live_clock: FixedClock
) -> None:
    # The example checks the signature's time against the real clock: signed at now.
    url, own = served_example
    settings = hooked(api_config(), [url])
    services = services_for(settings, redis_client, live_clock)
    shop = Platform(create_app(settings, services), SHOP_KEY)
    account = shop.create_account(email="jenny@example.com")
    changed = shop.post(f"/v1/accounts/{account['id']}", {"email": "jenny.new@example.com"})
    assert changed.status_code == 200, changed.get_json()

    run_outbox(services, live_clock)

    assert own.updated == [(account["id"], "jenny.new@example.com")]
    assert own.forgotten == []
    assert nothing_left(redis_client)  # each answered 204: acknowledged, none retried


def test_the_docs_flask_receiver_refuses_a_delivery_signed_with_another_secret(
    served_example: tuple[str, PlatformCode], live_clock: FixedClock
) -> None:
    url, own = served_example
    sender = WebhookSender(Outbound(exact_loopback=True), live_clock)
    impostor = WebhookEndpoint("shop", url, frozenset({"*"}), ("whsec_" + "x" * 43,))
    payload = b'{"id": "evt_1", "object": "event", "type": "account.updated", "data": {}}'

    result = sender.attempt(
        impostor, event_id="evt_1", event_type="account.updated", payload=payload
    )

    assert (result.outcome, result.status) == (Outcome.RETRY, 400)
    assert own.updated == []
