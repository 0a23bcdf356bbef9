"""A platform calling the /v1 API in tests: API keys in the config, requests with a key."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from oidc_link.config import Settings, settings_from_mapping
from oidc_link.ids import digest
from tests.conftest import SHOP_SECRET, provider_config

SHOP_KEY = "sk_test_shop_4eC39HqLyjWDarjtT1zdp7dc"
BLOG_KEY = "sk_test_blog_9xQ2mN7vB3kL8pR5tY1wZ6sA"
# Two clients of one owner, sharing a sector, each with its own key.
ACME_WEB_KEY = "sk_test_acmeweb_0aB1cD2eF3gH4iJ5kL6mN7o"
ACME_APP_KEY = "sk_test_acmeapp_7pQ8rS9tU0vW1xY2zA3bC4d"


def api_settings() -> Settings:
    return settings_from_mapping(api_config(), {"SHOP_SECRET": SHOP_SECRET}, "test")


def api_config() -> dict[str, Any]:
    """The test provider's configuration with API keys for shop, blog and two acme clients."""
    config = provider_config()
    clients: list[dict[str, Any]] = config["clients"]  # type: ignore[assignment]
    clients[0]["api_keys"] = [digest(SHOP_KEY)]
    clients[1]["api_keys"] = [digest(BLOG_KEY)]
    for name, key in (("acme-web", ACME_WEB_KEY), ("acme-app", ACME_APP_KEY)):
        clients.append(
            {
                "client_id": name,
                "client_secret": f"{name}-secret-0123456789",
                "redirect_uris": [f"https://{name}.example.test/callback"],
                "sector": "acme",
                "api_keys": [digest(key)],
            }
        )
    return config


class Platform:
    """Calls the API as one client, with its secret key."""

    def __init__(self, app: Flask, key: str) -> None:
        self.http = app.test_client()
        self.key = key

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        json: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> TestResponse:
        headers = self._headers(idempotency_key)
        if json is not None:
            return self.http.post(path, json=json, headers=headers)
        return self.http.post(path, data=data or {}, headers=headers)

    def get(self, path: str, query: dict[str, str] | None = None) -> TestResponse:
        return self.http.get(path, query_string=query or {}, headers=self._headers(None))

    def delete(self, path: str) -> TestResponse:
        return self.http.delete(path, headers=self._headers(None))

    def create_account(self, **params: str) -> dict[str, Any]:
        response = self.post("/v1/accounts", {"type": "express", **params})
        assert response.status_code == 200, response.get_json()
        return response.get_json()


def error_of(response: TestResponse, status: int) -> dict[str, Any]:
    """The Stripe-shaped error of a JSON (never HTML) answer with this status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Request-Id"].startswith("req_")
    error = response.get_json()["error"]
    assert set(error) == {"type", "code", "message", "param"}
    return error
