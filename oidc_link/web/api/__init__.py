"""The /v1 JSON API in Stripe's dialect: the blueprint and its routes (accounts, Account
Links, Login Links; events nested from events.py). They translate HTTP to ``accounts`` and
``account_links`` and hold no domain rules; keys, parameters, objects, errors and
Idempotency-Key have their own modules.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from oidc_link.web.api.auth import authenticate, caller
from oidc_link.web.api.errors import ApiError
from oidc_link.web.api.events import events_api, request_cause
from oidc_link.web.api.idempotent import run_idempotently
from oidc_link.web.api.objects import (
    account_link_object,
    account_list,
    account_object,
    deleted_account,
    login_link_object,
)
from oidc_link.web.api.params import (
    cursor_params,
    limit_param,
    metadata_param,
    metadata_update_param,
    only,
    request_params,
    text_param,
)
from oidc_link.web.context import services

API_PREFIX = "/v1"

api = Blueprint("api", __name__, url_prefix=API_PREFIX)
api.before_request(authenticate)
api.register_blueprint(events_api)


# --- Accounts. ---


def _no_such_account(account_id: str) -> ApiError:
    return ApiError(
        404,
        "invalid_request_error",
        f"No such account: '{account_id[:100]}'",
        code="resource_missing",
        param="account",
    )


@api.post("/accounts")
def create_account() -> tuple[Response, int]:
    params = request_params()
    only(params, ("type", "email", "metadata"))

    def create() -> tuple[dict[str, Any], int]:
        account = services().accounts.create(
            caller().owner,
            text_param(params, "type"),
            email=text_param(params, "email"),
            metadata=metadata_param(params),
            cause=request_cause(),
        )
        # Stripe answers a creation with 200 and the object.
        return account_object(account), 200

    return run_idempotently(params, create)


@api.get("/accounts/<account_id>")
def retrieve_account(account_id: str) -> Response:
    only(request_params(), ())
    account = services().accounts.find(caller().owner, account_id)
    if account is None:
        raise _no_such_account(account_id)
    return jsonify(account_object(account))


@api.post("/accounts/<account_id>")
def update_account(account_id: str) -> tuple[Response, int]:
    params = request_params()
    only(params, ("email", "metadata"))
    metadata, unset_metadata = metadata_update_param(params)

    def update() -> tuple[dict[str, Any], int]:
        account = services().accounts.update(
            caller().owner,
            account_id,
            email=text_param(params, "email"),
            metadata=metadata,
            unset_metadata=unset_metadata,
            cause=request_cause(),
        )
        if account is None:
            raise _no_such_account(account_id)
        return account_object(account), 200

    return run_idempotently(params, update)


@api.get("/accounts")
def list_accounts() -> Response:
    params = request_params()
    only(params, ("limit", "starting_after", "ending_before"))
    limit = limit_param(params)
    starting_after, ending_before = cursor_params(params)
    page = services().accounts.page(caller().owner, limit, starting_after, ending_before)
    return jsonify(account_list(page, f"{API_PREFIX}/accounts"))


@api.delete("/accounts/<account_id>")
def delete_account(account_id: str) -> Response:
    only(request_params(), ())
    if not services().accounts.delete(caller().owner, account_id, request_cause()):
        raise _no_such_account(account_id)
    return jsonify(deleted_account(account_id))


# --- Account Links and Login Links: minted here, never retrieved, listed or changed. ---


@api.post("/account_links")
def create_account_link() -> tuple[Response, int]:
    params = request_params()
    only(params, ("account", "type", "refresh_url", "return_url"))
    signer = caller()

    def create() -> tuple[dict[str, Any], int]:
        minted = services().account_links.create_account_link(
            signer.owner,
            signer.client.client_id,
            text_param(params, "account"),
            text_param(params, "type"),
            text_param(params, "refresh_url"),
            text_param(params, "return_url"),
        )
        return account_link_object(minted), 200

    return run_idempotently(params, create)


@api.post("/accounts/<account_id>/login_links")
def create_login_link(account_id: str) -> tuple[Response, int]:
    params = request_params()
    only(params, ())
    signer = caller()

    def create() -> tuple[dict[str, Any], int]:
        minted = services().account_links.create_login_link(
            signer.owner, signer.client.client_id, account_id
        )
        return login_link_object(minted), 200

    return run_idempotently(params, create)
