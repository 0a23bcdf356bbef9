"""The /v1 JSON API in Stripe's dialect: API-key authentication, form or JSON parameters,
Stripe-shaped objects, lists and errors, and Idempotency-Key on every POST.

Translates HTTP to the ``accounts`` and ``idempotency`` modules; holds no domain rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.datastructures import MultiDict

from oidc_link.config import ClientSettings
from oidc_link.ids import digest, same
from oidc_link.platform.account_links import AccountLinks, LinkAccountError, MintedLink
from oidc_link.platform.accounts import (
    Account,
    AccountParameterError,
    Accounts,
    UnknownStartingPointError,
)
from oidc_link.platform.idempotency import (
    MAX_KEY_LENGTH,
    Idempotency,
    InFlight,
    Mismatch,
    Replay,
    Started,
    StoredResponse,
    fingerprint,
)
from oidc_link.services import Services
from oidc_link.store import Store
from oidc_link.web.context import web_context

API_EXTENSION = "oidc_link_api"
API_PREFIX = "/v1"
# Stripe's list limits (docs.stripe.com/api/pagination).
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# Requests per second per API key: Stripe's default for live mode. A fixed one-second window
# in Redis, so every worker process counts together.
REQUESTS_PER_SECOND = 100
_BRACKETED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^\[\]]*)\]$")

api = Blueprint("api", __name__, url_prefix=API_PREFIX)


@dataclass(frozen=True)
class ApiContext:
    clients: tuple[ClientSettings, ...]
    accounts: Accounts
    idempotency: Idempotency
    store: Store
    links: AccountLinks


@dataclass(frozen=True)
class Caller:
    """The client whose API key signed the request, and that key's digest."""

    client: ClientSettings
    key_digest: str
    # The key itself, in memory for this request only: it seals stored idempotent replies.
    key: str

    @property
    def owner(self) -> str:
        # Clients of one owner that share a sector share their accounts (issue 6).
        return self.client.subject_sector


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` (DESIGN §6, Stripe's error object)."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.code = code
        self.param = param


def install_api(app: Flask, services: Services) -> None:
    settings = services.settings
    accounts = Accounts(services.store, services.clock, settings.subject_salt)
    app.extensions[API_EXTENSION] = ApiContext(
        clients=settings.clients,
        accounts=accounts,
        idempotency=Idempotency(services.store),
        store=services.store,
        links=AccountLinks(
            services.store, services.clock, settings.lifetimes, accounts, settings.issuer
        ),
    )
    app.register_blueprint(api)


def error_response(
    status: int,
    error_type: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
) -> tuple[Response, int]:
    body = {"error": {"type": error_type, "code": code, "message": message, "param": param}}
    response = jsonify(body)
    if status == 401:
        # RFC 6750 §3: say which scheme is expected.
        response.headers["WWW-Authenticate"] = 'Bearer realm="oidc-link API"'
    if status == 429:
        # RFC 6585 §4: when to try again (the window is one second).
        response.headers["Retry-After"] = "1"
    return response, status


@api.app_errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int]:
    return error_response(
        error.status, error.error_type, error.message, code=error.code, param=error.param
    )


def _context() -> ApiContext:
    return current_app.extensions[API_EXTENSION]


@api.before_request
def authenticate() -> None:
    """``Authorization: Bearer sk_...``: the client whose ``api_keys`` hold its digest."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "authentication_error",
            "You did not provide an API key: send it as 'Authorization: Bearer sk_...'.",
        )
    presented = digest(key)
    found: ClientSettings | None = None
    # Every configured hash is compared, in constant time, whatever matches first.
    for client in _context().clients:
        for key_hash in client.api_keys:
            if same(key_hash, presented):
                found = client
    if found is None:
        raise ApiError(401, "authentication_error", "Invalid API key provided.")
    if _context().store.limits.count("api", presented, 1) > REQUESTS_PER_SECOND:
        web_context().services.metrics.rate_limited("api_requests_per_second")
        raise ApiError(
            429,
            "rate_limit_error",
            "Too many requests hit the API too quickly; retry after a short pause.",
            code="rate_limit",
        )
    g.api_caller = Caller(found, presented, key)


def _caller() -> Caller:
    return g.api_caller


# --- Parameters: Stripe's form encoding (metadata[key]=value), or a JSON object. ---


def form_params(fields: MultiDict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, values in fields.lists():
        if len(values) > 1:
            raise _invalid(name, f"The parameter {name} was given more than once.")
        value = values[0]
        bracketed = _BRACKETED.match(name)
        if bracketed:
            outer, inner = bracketed.groups()
            nested = params.setdefault(outer, {})
            if not isinstance(nested, dict):
                raise _invalid(outer, f"Invalid {outer}: give either a hash or a value.")
            nested[inner] = value
        elif "[" in name or "]" in name:
            raise _invalid(name, f"Invalid parameter name: {name[:80]}.")
        elif name in params:
            raise _invalid(name, f"Invalid {name}: give either a hash or a value.")
        else:
            params[name] = value
    return params


def request_params() -> dict[str, Any]:
    if request.method != "POST":
        return form_params(request.args)
    if request.args:
        name = next(iter(request.args))
        raise _unknown(name, f"Received unknown parameter in the query string: {name[:80]}.")
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request_error", "The JSON body must be an object.")
        return data
    if request.mimetype in ("", "application/x-www-form-urlencoded"):
        return form_params(request.form)
    raise ApiError(
        400,
        "invalid_request_error",
        "Send parameters as application/x-www-form-urlencoded or application/json.",
    )


def only(params: dict[str, Any], allowed: Iterable[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _unknown(name, f"Received unknown parameter: {str(name)[:80]}.")


def text_param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _invalid(name, f"Invalid {name}: must be a string.")


def metadata_param(params: dict[str, Any]) -> dict[str, Any]:
    value = params.get("metadata")
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    raise _invalid("metadata", "Invalid metadata: must be a hash (metadata[key]=value).")


def limit_param(params: dict[str, Any]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    text = str(raw)
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Invalid limit: must be an integer from 1 to {MAX_LIMIT}.",
            code="parameter_invalid_integer",
            param="limit",
        )
    return int(text)


def _unknown(name: str, message: str) -> ApiError:
    return ApiError(
        400, "invalid_request_error", message, code="parameter_unknown", param=str(name)[:80]
    )


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(
        400, "invalid_request_error", message, code="parameter_invalid_string", param=name[:80]
    )


# --- Idempotency-Key (Stripe: docs.stripe.com/api/idempotent_requests). ---


def run_idempotently(
    params: dict[str, Any], action: Callable[[], tuple[dict[str, Any], int]]
) -> tuple[Response, int]:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        body, status = action()
        return jsonify(body), status
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            400,
            "invalid_request_error",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
        )
    idempotency = _context().idempotency
    scope = _caller().key_digest
    api_key = _caller().key
    outcome = idempotency.begin(scope, key, fingerprint("POST", request.path, params), api_key)
    if isinstance(outcome, Replay):
        response = jsonify(outcome.response.body)
        response.headers["Idempotent-Replayed"] = "true"
        response.headers["Idempotency-Key"] = key
        return response, outcome.response.status
    if isinstance(outcome, Mismatch):
        raise ApiError(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they "
            "were first used with.",
            code="idempotency_key_reused",
        )
    if isinstance(outcome, InFlight):
        raise ApiError(
            409,
            "idempotency_error",
            "Another request with this Idempotency-Key is still being processed; retry later.",
            code="idempotency_key_in_use",
        )
    started: Started = outcome
    try:
        body, status = action()
    except BaseException:
        # Failed validation (or worse): nothing is kept, the key may be used again.
        idempotency.abandon(scope, key, started)
        raise
    if status < 400:
        idempotency.finish(scope, key, started, StoredResponse(status, body), api_key)
    else:
        idempotency.abandon(scope, key, started)
    response = jsonify(body)
    response.headers["Idempotency-Key"] = key
    return response, status


# --- Accounts. ---


def account_object(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "object": "account",
        "created": account.created,
        "type": account.type,
        "email": account.email,
        "details_submitted": account.details_submitted,
        "metadata": account.metadata,
    }


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
        try:
            account = _context().accounts.create(
                _caller().owner,
                text_param(params, "type"),
                email=text_param(params, "email"),
                metadata=metadata_param(params),
            )
        except AccountParameterError as error:
            raise ApiError(
                400, "invalid_request_error", error.message, code=error.code, param=error.param
            ) from None
        # Stripe answers a creation with 200 and the object.
        return account_object(account), 200

    return run_idempotently(params, create)


@api.get("/accounts/<account_id>")
def retrieve_account(account_id: str) -> Response:
    only(request_params(), ())
    account = _context().accounts.find(_caller().owner, account_id)
    if account is None:
        raise _no_such_account(account_id)
    return jsonify(account_object(account))


@api.get("/accounts")
def list_accounts() -> Response:
    params = request_params()
    only(params, ("limit", "starting_after"))
    limit = limit_param(params)
    starting_after = text_param(params, "starting_after") or None
    try:
        page = _context().accounts.page(_caller().owner, limit, starting_after)
    except UnknownStartingPointError:
        raise ApiError(
            400,
            "invalid_request_error",
            f"No such account: '{(starting_after or '')[:100]}'",
            code="resource_missing",
            param="starting_after",
        ) from None
    return jsonify(
        object="list",
        data=[account_object(account) for account in page.accounts],
        has_more=page.has_more,
        url=f"{API_PREFIX}/accounts",
    )


@api.delete("/accounts/<account_id>")
def delete_account(account_id: str) -> Response:
    only(request_params(), ())
    if not _context().accounts.delete(_caller().owner, account_id):
        raise _no_such_account(account_id)
    return jsonify(id=account_id, object="account", deleted=True)


# --- Account Links and Login Links: minted here, never retrieved, listed or changed. ---


def _link_account_error(error: LinkAccountError) -> ApiError:
    status = 404 if error.missing else 400
    return ApiError(
        status, "invalid_request_error", error.message, code=error.code, param=error.param
    )


@api.post("/account_links")
def create_account_link() -> tuple[Response, int]:
    params = request_params()
    only(params, ("account", "type", "refresh_url", "return_url"))
    caller = _caller()

    def create() -> tuple[dict[str, Any], int]:
        try:
            minted = _context().links.create_account_link(
                caller.owner,
                caller.client.client_id,
                text_param(params, "account"),
                text_param(params, "type"),
                text_param(params, "refresh_url"),
                text_param(params, "return_url"),
            )
        except AccountParameterError as error:
            raise ApiError(
                400, "invalid_request_error", error.message, code=error.code, param=error.param
            ) from None
        except LinkAccountError as error:
            raise _link_account_error(error) from None
        return {
            "object": "account_link",
            "created": minted.grant.created,
            "expires_at": minted.grant.expires_at,
            "url": minted.url,
        }, 200

    return run_idempotently(params, create)


@api.post("/accounts/<account_id>/login_links")
def create_login_link(account_id: str) -> tuple[Response, int]:
    params = request_params()
    only(params, ())
    caller = _caller()

    def create() -> tuple[dict[str, Any], int]:
        try:
            minted: MintedLink = _context().links.create_login_link(
                caller.owner, caller.client.client_id, account_id
            )
        except LinkAccountError as error:
            raise _link_account_error(error) from None
        return {"object": "login_link", "created": minted.grant.created, "url": minted.url}, 200

    return run_idempotently(params, create)
