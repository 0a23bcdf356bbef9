"""What production refuses beyond the basics: every placeholder the samples ship (read from
.env.example and deploy/ themselves), a weak subject salt or key-encryption key, and short
client secrets; each problem names its field. serve and check-config apply the same rules."""

from __future__ import annotations

import base64
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from oidc_link.cli import main
from oidc_link.config import DEVELOPMENT_KEY_ENCRYPTION_KEY, settings_from_mapping
from oidc_link.config.production import production_problems
from oidc_link.errors import ConfigProblem
from oidc_link.ids import digest

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
SAMPLE_CONFIG = DEPLOY / "oidc-link.toml"
COMPOSE = ROOT / "docker-compose.yml"

# Generated once, as the samples tell the operator to (openssl rand -hex 32, oidc-link keys
# generate-kek, oidc-link hash-secret --new client): what production must accept.
SALT = "162106d3e40dae873e53c69c08adcd00a212dcda4b603a63a0df96d127773a13"
KEK = "mo_UJMwMA7MbU7xL5PMtv2uqVRO5DmXOExEEEqMmHWI="
CLIENT_SECRET = "49eaabd500c8043edd3d73ab7c529f07541e35f60786bc917e827f5d2db9b8d3"
REDIS_PASSWORD = "fdd0c704d98acc0462a3be5084dad63a852fa18cf2ef9c1a2a15a634e8e0a655"
PUBLISHABLE_KEY = "pk_live_xmOJVo2LZRhQI0wr_gjEhepjsLiZqSql"
# 16 random bytes: twice over, they make a 32-byte key with a tell.
REPEATED_HALF = bytes.fromhex("9311e4a7c05b3d6f28f1b48e7a0c5d92")

# .env.example's settings that work as shipped: no secret, no address of the operator's.
KEPT_AS_SHIPPED = {
    "OIDC_LINK_PORT",
    "REDIS_MAXMEMORY",
    "OIDC_LINK_SERVER_WORKERS",
    "OIDC_LINK_SERVER_THREADS",
    "OIDC_LINK_METRICS_ENABLED",
    "OIDC_LINK_METRICS_PORT",
}
# Every other variable is a placeholder: what the operator fills in, and the field that
# production must name when the shipped value is left in.
FILLED_IN = {
    "OIDC_LINK_ISSUER": ("https://login.shop.test", "issuer"),
    "REDIS_PASSWORD": (REDIS_PASSWORD, "redis_url"),
    "OIDC_LINK_KEY_ENCRYPTION_KEY": (KEK, "keys.encryption_key"),
    "OIDC_LINK_SUBJECT_SALT": (SALT, "subject_salt"),
    "LINK_BASE_URL": ("https://link.shop.test", "link.live.base_url"),
    "LINK_PUBLISHABLE_KEY": (PUBLISHABLE_KEY, "link.live.publishable_key"),
    "SHOP_CLIENT_SECRET": (CLIENT_SECRET, "clients[0].client_secret"),
}
# What a person would write for a value still to be filled in (a net wider than the rules).
LOOKS_LIKE_A_PLACEHOLDER = re.compile(r"example|replace|your|change.?me|todo|<|\.\.\.", re.I)


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def compose_environment(values: Mapping[str, str]) -> dict[str, str]:
    """The provider's environment as docker-compose.yml builds it from .env."""
    return {**values, "REDIS_URL": f"redis://:{values['REDIS_PASSWORD']}@redis:6379/0"}


def filled_in() -> dict[str, str]:
    return {**env_example(), **{name: value for name, (value, _) in FILLED_IN.items()}}


def sample_problems(
    environment: Mapping[str, str], config: Mapping[str, Any] | None = None
) -> list[ConfigProblem]:
    data = config if config is not None else tomllib.loads(SAMPLE_CONFIG.read_text())
    settings = settings_from_mapping(data, compose_environment(environment), "sample")
    return production_problems(settings)


def edited_sample() -> dict[str, Any]:
    """The sample with its client pointed at a real site, as the operator edits it."""
    return tomllib.loads(SAMPLE_CONFIG.read_text().replace("shop.example.com", "www.shop.test"))


def fields(problems: list[ConfigProblem]) -> list[str]:
    return [problem.field for problem in problems]


# The samples themselves.


def test_every_env_example_variable_is_either_kept_as_shipped_or_a_known_placeholder() -> None:
    # A variable added later must be classified here, and then its placeholder is tested.
    assert set(env_example()) == KEPT_AS_SHIPPED | set(FILLED_IN)


def test_the_sample_filled_in_and_with_its_client_edited_passes_production() -> None:
    assert sample_problems(filled_in(), edited_sample()) == []


@pytest.mark.parametrize("variable", sorted(FILLED_IN))
def test_each_placeholder_of_the_env_example_left_alone_is_refused_and_named(
    variable: str,
) -> None:
    environment = {**filled_in(), variable: env_example()[variable]}

    problems = sample_problems(environment, edited_sample())

    assert fields(problems) == [FILLED_IN[variable][1]]


def test_the_env_example_as_shipped_is_refused_for_every_placeholder_at_once() -> None:
    named = set(fields(sample_problems(env_example())))

    assert {field for _, field in FILLED_IN.values()} <= named


def deploy_values() -> Iterator[tuple[str, str]]:
    """(field, text) for every string written in deploy/, named as problems name fields."""

    def walk(value: Any, name: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{name}.{key}" if name else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, f"{name}[{index}]" if isinstance(item, dict) else name)

    for path in sorted(DEPLOY.rglob("*.toml")):
        yield from walk(tomllib.loads(path.read_text()), "")


def test_deploy_holds_only_toml_files_which_this_test_reads() -> None:
    assert {path.suffix for path in DEPLOY.rglob("*") if path.is_file()} == {".toml"}


def test_every_placeholder_written_in_deploy_is_refused_in_its_field() -> None:
    named = fields(sample_problems(filled_in()))
    flagged = [
        (name, text)
        for name, text in deploy_values()
        if not text.startswith("${") and LOOKS_LIKE_A_PLACEHOLDER.search(text)
    ]

    assert flagged, "the sample's example addresses are found"
    for name, text in flagged:
        if name.endswith(".name"):
            # A display name is no address or secret: its client is refused through the
            # sample addresses beside it, which the operator must edit anyway.
            client = name.removesuffix(".name")
            assert any(field.startswith(client + ".") for field in named), text
        else:
            assert name in named, f"{name} = {text!r} is not refused"


def test_the_compose_file_gives_defaults_only_to_settings_kept_as_shipped() -> None:
    defaulted = set(re.findall(r"\$\{([A-Z0-9_]+):-", COMPOSE.read_text()))

    assert defaulted <= KEPT_AS_SHIPPED


# Rules one by one, on a live configuration that passes.


def live_config(**changes: Any) -> dict[str, Any]:
    client = {
        "client_id": "shop",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": ["https://www.shop.test/callback"],
    }
    config: dict[str, Any] = {
        "issuer": "https://login.shop.test",
        "redis_url": "redis://127.0.0.1:6379/0",
        "subject_salt": SALT,
        "keys": {"encryption_key": KEK},
        "link": {
            "mode": "live",
            "live": {"base_url": "https://link.shop.test", "publishable_key": PUBLISHABLE_KEY},
        },
        "clients": [client],
    }
    for name, value in changes.items():
        table, key = (
            (client, name.removeprefix("client_")) if name.startswith("client_") else (config, name)
        )
        if value is None:
            del table[key]
        else:
            table[key] = value
    return config


def live_problems(**changes: Any) -> list[ConfigProblem]:
    return production_problems(settings_from_mapping(live_config(**changes), {}, "live"))


def test_a_live_configuration_with_generated_secrets_passes() -> None:
    assert live_problems() == []


@pytest.mark.parametrize(
    ("salt", "why"),
    [
        ("x", "holds about 4 bits of entropy, under 256"),
        ("serve-test-subject-salt", "bits of entropy, under 256"),
        ("a" * 63, "bits of entropy, under 256"),  # 63 hex characters: 252 bits
        ("replace-with-openssl-rand-hex-32", "is a placeholder from the samples"),
        ("oidc-link-sandbox-subject-salt", "is the sandbox's built-in salt"),
        ("a" * 100, "uses fewer than 8 different characters"),
        ("deadbeef" * 8, "uses fewer than 8 different characters"),
        ("3f9a1c7e5b2d8046" * 4, "repeats a run of 8 characters"),
        ("Subject-Salt-0f-0ur-Company!" * 2, "repeats a run of 8 characters"),
        ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", "counts through 8"),
    ],
)
def test_a_subject_salt_under_32_bytes_of_entropy_is_refused_saying_why(
    salt: str, why: str
) -> None:
    problems = live_problems(subject_salt=salt)

    assert fields(problems) == ["subject_salt"]
    assert why in problems[0].message
    assert "openssl rand -hex 32" in problems[0].message


@pytest.mark.parametrize(
    "salt",
    [
        SALT,  # openssl rand -hex 32
        SALT.upper(),
        "JbznOLNDv7_wjX5JlRToqfeZFCzyFrn39VscdfX4WlI",  # secrets.token_urlsafe(32)
        "bPPBqKMVzC5txNqonm7604QwYjq9p5i7EV2IVEUTPgo=",  # openssl rand -base64 32
    ],
)
def test_a_generated_subject_salt_of_32_bytes_is_accepted(salt: str) -> None:
    assert live_problems(subject_salt=salt) == []


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (DEVELOPMENT_KEY_ENCRYPTION_KEY, "is the development key built into oidc-link"),
        ("RVhBTVBMRS1PTkxZLWdlbmVyYXRlLXlvdXItb3duISE=", "is a placeholder from the samples"),
        (base64.urlsafe_b64encode(b"my-own-key-encryption-key-32byte").decode(), "readable text"),
        (base64.urlsafe_b64encode(bytes(32)).decode(), "fewer than 16 different bytes"),
        (base64.urlsafe_b64encode(bytes(range(200, 232))).decode(), "counts through 8 bytes"),
        (base64.urlsafe_b64encode(REPEATED_HALF * 2).decode(), "repeats a run of 8 bytes"),
    ],
)
def test_a_key_encryption_key_that_is_not_32_random_bytes_is_refused_saying_why(
    key: str, why: str
) -> None:
    problems = live_problems(keys={"encryption_key": key})

    assert fields(problems) == ["keys.encryption_key"]
    assert why in problems[0].message
    assert "oidc-link keys generate-kek" in problems[0].message


def test_a_client_secret_under_32_characters_loads_but_production_refuses_it() -> None:
    short = CLIENT_SECRET[:31]
    settings_from_mapping(live_config(client_client_secret=short), {})  # fine for development

    problems = live_problems(client_client_secret=short)

    assert fields(problems) == ["clients[0].client_secret"]
    assert "at least 32 characters" in problems[0].message
    assert live_problems(client_client_secret=CLIENT_SECRET[:32]) == []


def test_a_hashed_client_secret_is_taken_as_is_since_its_length_cannot_be_measured() -> None:
    config = {"client_secret": None, "client_secret_sha256": [digest("short-but-hashed")]}
    changes = {f"client_{name}": value for name, value in config.items()}

    assert live_problems(**changes) == []


def test_the_hash_of_the_env_example_placeholder_is_refused_as_a_client_secret() -> None:
    placeholder = env_example()["SHOP_CLIENT_SECRET"]
    hashes = [digest(CLIENT_SECRET), digest(placeholder)]
    changes = {"client_client_secret": None, "client_client_secret_sha256": hashes}

    assert fields(live_problems(**changes)) == ["clients[0].client_secret_sha256"]


def test_each_client_problem_names_the_client_by_its_place() -> None:
    config = live_config()
    config["clients"].append(
        {
            "client_id": "blog",
            "client_secret": "0123456789abcdef-short",
            "redirect_uris": ["https://blog.example.org/cb"],
        }
    )

    problems = production_problems(settings_from_mapping(config, {}))

    assert fields(problems) == ["clients[1].client_secret", "clients[1].redirect_uris"]


def test_a_placeholder_redis_password_is_named_without_showing_the_url() -> None:
    url = "redis://:replace-with-openssl-rand-hex-32@redis:6379/0"

    problems = live_problems(redis_url=url)

    assert fields(problems) == ["redis_url"]
    assert "replace-with" not in str(problems[0])


# Sandbox staging (serve --allow-sandbox).


def sandbox_config(**changes: Any) -> dict[str, Any]:
    config = live_config(**changes)
    jenny = {"email": "jenny@example.com", "phone": "+14155550123"}
    config["link"] = {"sandbox": {"users": [jenny]}}
    return config


def test_allow_sandbox_accepts_the_sandboxs_built_in_salt_and_key_when_none_is_set() -> None:
    config = sandbox_config()
    del config["subject_salt"], config["keys"]

    problems = production_problems(settings_from_mapping(config, {}), allow_sandbox=True)

    assert problems == []


def test_allow_sandbox_still_refuses_a_weak_salt_or_key_that_is_configured() -> None:
    zeros = base64.urlsafe_b64encode(bytes(32)).decode()
    config = sandbox_config(subject_salt="staging-salt", keys={"encryption_key": zeros})

    problems = production_problems(settings_from_mapping(config, {}), allow_sandbox=True)

    assert fields(problems) == ["subject_salt", "keys.encryption_key"]


# The commands.


def test_serve_and_check_config_refuse_the_env_example_naming_every_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in compose_environment(env_example()).items():
        monkeypatch.setenv(name, value)  # the process environment, as the container has it

    assert main(["serve", "--config", str(SAMPLE_CONFIG)]) == 1
    error = capsys.readouterr().err
    assert main(["check-config", "--production", str(SAMPLE_CONFIG)]) == 1
    out = capsys.readouterr().out

    for _, field in FILLED_IN.values():
        assert f"{SAMPLE_CONFIG}: {field}: " in error
        assert f"{SAMPLE_CONFIG}: {field}: " in out
    assert "Refusing to serve in production" in error


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:9000/logout", "https://localhost/logout", "https://10.1.2.3/logout"],
)
def test_a_loopback_or_private_back_channel_uri_is_refused_outside_sandbox(uri: str) -> None:
    problems = live_problems(client_backchannel_logout_uri=uri)

    assert fields(problems) == ["clients[0].backchannel_logout_uri"]
    assert "loopback or private address" in problems[0].message


def test_a_public_back_channel_uri_passes() -> None:
    assert live_problems(client_backchannel_logout_uri="https://shop.test/logout") == []
