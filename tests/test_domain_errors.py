"""Domain errors share one base, and each surface maps every one of them in one function
(DESIGN.md §6): hosted pages (page_for), OAuth JSON (protocol_error), /v1 (api_error_for)."""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask, g

import oidc_link
import oidc_link.logout
import oidc_link.platform.account_links
import oidc_link.platform.accounts
from oidc_link.errors import (
    DomainError,
    FlowError,
    FlowExpiredError,
    FlowStepError,
    LogoutError,
    PlatformError,
)
from oidc_link.logout import LogoutConfirmationError
from oidc_link.platform.account_links import AccountLinkAccountError
from oidc_link.platform.accounts import AccountParameterError, UnknownStartingPointError
from oidc_link.web.api.errors import api_error_for, error_response
from oidc_link.web.errors import page_for, protocol_error

PACKAGE = Path(oidc_link.__file__).resolve().parent
# Loaded for their subclasses of DomainError.
DEFINING_MODULES = (
    oidc_link.platform.accounts,
    oidc_link.platform.account_links,
    oidc_link.logout,
)
CODE = re.compile(r"^[a-z]+(_[a-z]+)*$")

# Exceptions that are deliberately not domain errors (DESIGN.md §6 "apart"), each with why.
APART = {
    "ConfigError": "a start-up report of every configuration problem, never an answer",
    "StoreUnavailableError": "an outage, not a fault of the request: 503 on every surface",
    "LinkError": "the Link client's one error; its kind picks the hosted page's notice",
    "ApiError": "already Stripe's error object: /v1's own refusals (key, rate, parameters)",
    "AuthorizationPageError": "wraps Authlib's OAuth2Error when no redirect_uri is trusted",
    "InvalidAccessTokenError": "RFC 6750 §3.1, the bearer challenge at /userinfo",
    "RefusedAssertionError": "internal to client_assertion.py, answered as invalid_client",
    "ClientKeysError": "a client's JWK Set is unusable: a configuration problem or a log line",
    "KeysUnavailableError": "internal to client_assertion.py: no keys to check an assertion",
    "KeyEncryptionError": "the key ring cannot be opened: an operator's problem at start-up",
    "OutboundError": "a fetch of a client's URL failed: logged and retried, never answered",
    "RedisUrlError": "a configuration problem, reported as ConfigError",
    "AddressInUseError": "the server cannot listen: a command-line message",
}


def _domain_errors() -> list[type[DomainError]]:
    found: list[type[DomainError]] = []
    pending = list(DomainError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


def _example(cls: type[DomainError]) -> DomainError:
    """An instance as its raisers build one."""
    if cls is UnknownStartingPointError:
        return cls("acct_unknown")
    if cls is AccountLinkAccountError:
        return cls("account", "resource_missing", "No such account: 'acct_x'", missing=True)
    if issubclass(cls, PlatformError):
        return cls("email", "email_invalid", "Invalid email address.")
    if cls is FlowStepError:
        return cls("shop", flow_id="flow_example")
    if issubclass(cls, FlowError):
        return cls("shop", "https://shop.example/callback")
    if cls is LogoutConfirmationError:
        return cls()  # its one message, which its page shows in the page's language
    if issubclass(cls, LogoutError):
        return cls("The sign-out request names two different sites.")
    return cls()


DOMAIN_ERRORS = _domain_errors()
SUBCLASS_IDS = [cls.__name__ for cls in DOMAIN_ERRORS]


def test_the_families_and_their_members_are_all_found() -> None:
    names = {cls.__name__ for cls in DOMAIN_ERRORS}

    assert {"FlowError", "PlatformError", "LogoutError"} <= names
    assert {"FlowNotFoundError", "AccountParameterError", "AccountLinkAccountError"} <= names
    assert {"LogoutRequestError", "LogoutConfirmationError"} <= names


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=SUBCLASS_IDS)
def test_every_domain_error_has_its_own_stable_code_and_a_docstring(
    cls: type[DomainError],
) -> None:
    assert CODE.match(cls.code), cls.code
    assert "code" in vars(cls), f"{cls.__name__} inherits its code"
    assert (vars(cls).get("__doc__") or "").strip(), f"{cls.__name__} has no docstring"
    assert cls.message.strip()


def test_no_two_domain_errors_share_a_code() -> None:
    codes = [cls.code for cls in DOMAIN_ERRORS]

    assert len(codes) == len(set(codes))


def test_every_exception_in_the_package_is_a_domain_error_or_set_apart_with_a_reason() -> None:
    domain = {cls.__name__ for cls in DOMAIN_ERRORS} | {"DomainError"}
    exceptions = set()
    for path in PACKAGE.rglob("*.py"):
        if "client" in path.relative_to(PACKAGE).parts[:1]:
            continue  # the standalone /v1 SDK keeps stripe-python's own error classes
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                exceptions.add(node.name)

    assert exceptions - domain - set(APART) == set()
    assert set(APART) <= exceptions, "a listed exception no longer exists"


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=SUBCLASS_IDS)
def test_every_domain_error_gets_a_hosted_page_that_says_it_with_the_request_id(
    app: Flask, cls: type[DomainError]
) -> None:
    error = _example(cls)
    with app.test_request_context("/signin/flow_example"):
        g.request_id = "req_domain_errors"
        page = page_for(error)
        response = page.response()

    assert 200 <= page.status < 500
    assert page.title
    assert error.message in page.message
    assert response.status_code == page.status
    assert response.mimetype == "text/html"
    assert "req_domain_errors" in response.get_data(as_text=True)


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=SUBCLASS_IDS)
def test_every_domain_error_gets_an_oauth_invalid_request_in_json(
    cls: type[DomainError],
) -> None:
    error = _example(cls)

    answer = protocol_error(error)

    assert answer.status == 400
    assert ("Content-Type", "application/json") in answer.headers
    assert json.loads(str(answer.body)) == {
        "error": "invalid_request",
        "error_description": error.message,
    }


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=SUBCLASS_IDS)
def test_every_domain_error_gets_a_stripe_error_object_on_v1(
    app: Flask, cls: type[DomainError]
) -> None:
    error = _example(cls)
    with app.test_request_context("/v1/accounts"):
        response = error_response(api_error_for(error))

    assert response.status_code == (
        404 if isinstance(error, PlatformError) and error.missing else 400
    )
    assert response.get_json() == {
        "error": {
            "type": "invalid_request_error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
        }
    }


def test_a_platform_error_keeps_the_code_and_param_its_raiser_gave() -> None:
    error = AccountParameterError("type", "parameter_missing", "Missing required param: type.")

    assert (error.code, error.param, error.message) == (
        "parameter_missing",
        "type",
        "Missing required param: type.",
    )
    assert str(error) == "Missing required param: type."
    assert AccountParameterError.code == "parameter_invalid_string"


def test_a_step_error_page_offers_the_flow_s_current_page_as_the_way_on(app: Flask) -> None:
    with app.test_request_context("/signin/flow_example/code"):
        page = page_for(FlowStepError("shop", flow_id="flow_example"))

    assert page.status == 409
    assert page.next_url == "/signin/flow_example"
    assert page.back_url is None


def test_a_stopped_flow_s_page_offers_the_way_back_to_the_registered_site(app: Flask) -> None:
    registered = app.extensions["oidc_link"].services.settings.client("shop").redirect_uris[0]
    with app.test_request_context("/signin/flow_example"):
        page = page_for(FlowError("shop", registered))
        unregistered = page_for(FlowError("shop", "https://elsewhere.example/callback"))

    assert page.back_url is not None and registered.startswith(page.back_url)
    assert page.site
    assert unregistered.back_url is None and unregistered.site is None


def test_an_unexpected_error_is_a_500_on_every_surface_without_its_details(app: Flask) -> None:
    secret_detail = RuntimeError("token=sk_test_secret")
    with app.test_request_context("/signin/flow_example"):
        page = page_for(secret_detail)
        html = page.response().get_data(as_text=True)
    with app.test_request_context("/v1/accounts"):
        api = error_response(api_error_for(secret_detail))
    oauth = protocol_error(secret_detail)

    assert (page.status, api.status_code, oauth.status) == (500, 500, 500)
    assert "sk_test_secret" not in html + api.get_data(as_text=True) + str(oauth.body)
    assert api.get_json()["error"]["type"] == "api_error"
    assert json.loads(str(oauth.body))["error"] == "server_error"


def _raise(error: Exception) -> Callable[[], str]:
    def view() -> str:
        raise error

    return view


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/boom", "text/html"),
        ("/token/boom", "application/json"),
        ("/v1/boom", "application/json"),
    ],
    ids=["page", "oauth-json", "v1"],
)
def test_a_bug_is_a_500_in_the_surface_s_shape_and_logged_with_its_traceback(
    app: Flask, caplog: pytest.LogCaptureFixture, path: str, content_type: str
) -> None:
    app.add_url_rule(path, "boom", _raise(RuntimeError("token=sk_test_secret")))
    with caplog.at_level(logging.ERROR, logger="oidc_link.web"):
        answer = app.test_client().get(path)

    assert answer.status_code == 500
    assert answer.mimetype == content_type
    assert "sk_test_secret" not in answer.get_data(as_text=True)
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and "Unhandled error" in logged[0].getMessage()


def test_a_domain_error_met_outside_its_blueprint_is_answered_and_not_logged_as_a_bug(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.add_url_rule("/elsewhere", "elsewhere", _raise(FlowExpiredError("shop")))
    with caplog.at_level(logging.ERROR, logger="oidc_link.web"):
        answer = app.test_client().get("/elsewhere")

    assert answer.status_code == 410
    assert FlowExpiredError.message in answer.get_data(as_text=True)
    assert not [record for record in caplog.records if record.exc_info]
