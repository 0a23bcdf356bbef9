"""``[[clients.webhooks]]``: endpoints with a URL, event types and a signing secret read from
the environment; each mistake is a ConfigError naming its field and never the secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oidc_link.cli import main
from oidc_link.config import settings_from_mapping
from oidc_link.config.production import production_problems
from oidc_link.config.webhooks import WEBHOOK_EVENT_TYPES
from oidc_link.errors import ConfigError
from oidc_link.webhooks.signature import new_signing_secret
from tests.test_production_config import live_config

CURRENT = "whsec_" + "c" * 43
PREVIOUS = "whsec_" + "p" * 43
ENVIRONMENT = {"SHOP_WEBHOOK_SECRET": CURRENT, "SHOP_WEBHOOK_PREVIOUS_SECRET": PREVIOUS}
FIELD = "clients[0].webhooks[0]"


def config_with(*webhooks: dict[str, Any]) -> dict[str, Any]:
    return {
        "issuer": "https://login.example.com",
        "clients": [
            {
                "client_id": "shop",
                "client_secret": "s3cret-value-long-enough",
                "redirect_uris": ["https://shop.example.com/cb"],
                "webhooks": list(webhooks),
            }
        ],
    }


def endpoint(**fields: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "url": "https://shop.example.com/hooks/oidc-link",
        "events": ["account.updated"],
        "secret": "${SHOP_WEBHOOK_SECRET}",
    }
    table.update(fields)
    return {key: value for key, value in table.items() if value is not None}


def problems_of(
    data: dict[str, Any], environ: dict[str, str] = ENVIRONMENT
) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, environ)
    found: dict[str, list[str]] = {}
    for problem in caught.value.problems:
        found.setdefault(problem.field, []).append(problem.message)
    return found


def test_an_endpoint_loads_with_its_url_events_and_secret_from_the_environment() -> None:
    settings = settings_from_mapping(config_with(endpoint()), ENVIRONMENT)

    (hook,) = settings.client("shop").webhooks
    assert hook.client_id == "shop"
    assert hook.url == "https://shop.example.com/hooks/oidc-link"
    assert hook.events == frozenset({"account.updated"})
    assert hook.secrets == (CURRENT,)
    assert hook.wants("account.updated")
    assert not hook.wants("account.deleted")
    assert "SHOP_WEBHOOK_SECRET" in settings.environment_names


def test_a_rotation_keeps_the_current_secret_first_and_the_previous_second() -> None:
    settings = settings_from_mapping(
        config_with(endpoint(previous_secret="${SHOP_WEBHOOK_PREVIOUS_SECRET}")), ENVIRONMENT
    )

    assert settings.client("shop").webhooks[0].secrets == (CURRENT, PREVIOUS)


def test_a_star_subscribes_to_every_event_type() -> None:
    settings = settings_from_mapping(config_with(endpoint(events=["*"])), ENVIRONMENT)

    hook = settings.client("shop").webhooks[0]
    assert all(hook.wants(event_type) for event_type in WEBHOOK_EVENT_TYPES)


def test_a_client_without_webhooks_has_none() -> None:
    data = config_with()
    del data["clients"][0]["webhooks"]

    assert settings_from_mapping(data, {}).client("shop").webhooks == ()


def test_plain_http_is_allowed_only_on_loopback() -> None:
    loopback = settings_from_mapping(
        config_with(endpoint(url="http://127.0.0.1:9000/hooks")), ENVIRONMENT
    )
    assert loopback.client("shop").webhooks[0].url == "http://127.0.0.1:9000/hooks"

    problems = problems_of(config_with(endpoint(url="http://shop.example.com/hooks")))
    assert problems == {f"{FIELD}.url": ["must use https (http only on localhost/loopback)"]}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/hooks", "must be an absolute URL"),
        ("ftp://shop.example.com/hooks", "must use https (http only on localhost/loopback)"),
        ("https://shop.example.com/hooks#part", "must not contain a fragment"),
        ("https://user:pw@shop.example.com/hooks", "must not contain a user name or password"),
    ],
)
def test_a_bad_url_is_a_problem_naming_the_url_field(url: str, message: str) -> None:
    assert problems_of(config_with(endpoint(url=url))) == {f"{FIELD}.url": [message]}


def test_an_unknown_event_type_is_named_with_the_known_ones() -> None:
    problems = problems_of(config_with(endpoint(events=["account.updated", "charge.succeeded"])))

    (message,) = problems[f"{FIELD}.events"]
    assert message.startswith("unknown event type(s): charge.succeeded (known: account.created")


@pytest.mark.parametrize(
    ("events", "start"),
    [(None, "is required"), ([], "must not be empty"), (["*", "account.created"], '"*" already')],
)
def test_missing_empty_or_mixed_star_events_are_problems(
    events: list[str] | None, start: str
) -> None:
    problems = problems_of(config_with(endpoint(events=events)))

    assert problems[f"{FIELD}.events"][0].startswith(start)


def test_a_missing_secret_is_a_problem_naming_the_field() -> None:
    problems = problems_of(config_with(endpoint(secret=None)))

    assert problems == {
        f"{FIELD}.secret": ['is required: "${VARIABLE}" naming the environment variable']
    }


def test_a_secret_written_into_the_file_is_refused_without_quoting_it() -> None:
    problems = problems_of(config_with(endpoint(secret=CURRENT)))

    (message,) = problems[f"{FIELD}.secret"]
    assert "must come from the environment" in message
    assert CURRENT not in message


def test_an_unset_variable_is_named() -> None:
    problems = problems_of(config_with(endpoint()), environ={})

    assert problems == {
        f"{FIELD}.secret": ["refers to unset environment variable SHOP_WEBHOOK_SECRET"]
    }


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("replace-with-openssl-rand-hex-32", "must start with 'whsec_'"),
        ("whsec_short", "too short"),
        ("", "must start with 'whsec_'"),
    ],
)
def test_a_variable_that_holds_no_webhook_secret_is_a_problem(value: str, words: str) -> None:
    problems = problems_of(config_with(endpoint()), environ={"SHOP_WEBHOOK_SECRET": value})

    (message,) = problems[f"{FIELD}.secret"]
    assert words in message
    assert value == "" or value not in message


def test_a_previous_secret_equal_to_the_current_one_is_a_problem() -> None:
    environ = {**ENVIRONMENT, "SHOP_WEBHOOK_PREVIOUS_SECRET": CURRENT}
    data = config_with(endpoint(previous_secret="${SHOP_WEBHOOK_PREVIOUS_SECRET}"))

    assert problems_of(data, environ) == {
        f"{FIELD}.previous_secret": ["is the same as secret: rotate to a new one"]
    }


def test_the_same_url_twice_for_one_client_is_a_problem() -> None:
    problems = problems_of(config_with(endpoint(), endpoint(events=["account.created"])))

    assert problems == {
        "clients[0].webhooks[1].url": ["appears twice for this client: list its events once"]
    }


def test_unknown_fields_and_a_non_list_are_problems() -> None:
    assert problems_of(config_with(endpoint(retries=3))) == {
        f"{FIELD}.retries": ["unknown setting"]
    }
    data = config_with()
    data["clients"][0]["webhooks"] = {"url": "https://shop.example.com/hooks"}
    assert problems_of(data) == {
        "clients[0].webhooks": ["must be an array of tables ([[clients.webhooks]])"]
    }


def test_several_mistakes_are_reported_at_once() -> None:
    problems = problems_of(
        config_with(endpoint(url="http://shop.example.com/h", events=["nope"], secret=None))
    )

    assert set(problems) == {f"{FIELD}.url", f"{FIELD}.events", f"{FIELD}.secret"}


def test_a_new_signing_secret_is_accepted_by_the_config_and_never_repeats() -> None:
    first, second = new_signing_secret(), new_signing_secret()
    settings = settings_from_mapping(config_with(endpoint()), {"SHOP_WEBHOOK_SECRET": first})

    assert first.startswith("whsec_") and first != second
    assert settings.client("shop").webhooks[0].secrets == (first,)


def test_the_endpoint_repr_never_shows_its_secrets() -> None:
    settings = settings_from_mapping(
        config_with(endpoint(previous_secret="${SHOP_WEBHOOK_PREVIOUS_SECRET}")), ENVIRONMENT
    )

    shown = repr(settings.client("shop").webhooks[0])
    assert CURRENT not in shown and PREVIOUS not in shown


def test_the_new_secret_command_prints_a_secret_the_config_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["webhooks", "new-secret"]) == 0

    secret = capsys.readouterr().out.strip()
    settings = settings_from_mapping(config_with(endpoint()), {"SHOP_WEBHOOK_SECRET": secret})
    assert settings.client("shop").webhooks[0].secrets == (secret,)


# Production (`check-config --production`): what loads but cannot work, or is a sample's.


def live_with(url: str) -> list[str]:
    data = live_config()
    data["clients"][0]["webhooks"] = [endpoint(url=url)]
    settings = settings_from_mapping(data, ENVIRONMENT, "live")
    return [f"{problem.field}: {problem.message}" for problem in production_problems(settings)]


def test_production_accepts_a_public_https_endpoint() -> None:
    assert live_with("https://hooks.shop.test/oidc-link") == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hooks", "https://10.1.2.3/hooks"])
def test_production_refuses_an_endpoint_that_delivery_would_refuse(url: str) -> None:
    (problem,) = live_with(url)

    assert problem.startswith("clients[0].webhooks[0].url: ")
    assert "loopback or private address" in problem


def test_production_refuses_an_endpoint_on_an_example_domain() -> None:
    (problem,) = live_with("https://shop.example.com/hooks")

    assert problem.startswith("clients[0].webhooks[0].url: ")
    assert "reserved for examples" in problem


def test_check_config_lists_each_webhook_problem_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "oidc-link.toml"
    path.write_text(
        'issuer = "https://login.example.com"\n\n'
        "[[clients]]\n"
        'client_id = "shop"\n'
        'client_secret = "s3cret-value-long-enough"\n'
        'redirect_uris = ["https://shop.example.com/cb"]\n\n'
        "[[clients.webhooks]]\n"
        'url = "http://shop.example.com/hooks"\n'
        'events = ["account.updated", "charge.succeeded"]\n'
        'secret = "${UNSET_WEBHOOK_SECRET}"\n',
        encoding="utf-8",
    )

    assert main(["check-config", str(path)]) == 1

    out = capsys.readouterr().out
    assert "clients[0].webhooks[0].url: must use https" in out
    assert "clients[0].webhooks[0].events: unknown event type(s): charge.succeeded" in out
    assert "clients[0].webhooks[0].secret: refers to unset environment variable" in out
    assert "3 problem(s) found." in out
