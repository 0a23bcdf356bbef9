"""The container files: docker-compose.yml validates (Debian's docker-compose, no engine
needed), the sample config passes the production check once filled in (and not with
.env.example's placeholders: tests/test_production_config.py names each), and the
Dockerfile's health check really tells a serving provider from a dead one."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.live_server import LiveServer, start_live_server

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SAMPLE_CONFIG = ROOT / "deploy" / "oidc-link.toml"
# CI installs docker-compose and sets this, so that a missing one fails instead of skipping.
REQUIRE_COMPOSE = os.environ.get("OIDC_LINK_TEST_COMPOSE") == "required"


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@pytest.fixture
def compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if REQUIRE_COMPOSE:
            pytest.fail("docker-compose is required (OIDC_LINK_TEST_COMPOSE=required)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return binary


def run_compose(binary: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    # A bare environment: only the env file may supply the variables.
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        cwd=ROOT,
        timeout=60,
    )


def test_the_compose_file_validates_with_the_example_environment(compose: str) -> None:
    result = run_compose(compose, ENV_EXAMPLE)

    assert result.returncode == 0, result.stderr


def test_the_compose_file_refuses_to_start_without_its_secrets(
    compose: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")

    result = run_compose(compose, empty)

    assert result.returncode != 0
    assert "set REDIS_PASSWORD in .env" in result.stderr


def test_every_variable_the_compose_file_uses_is_in_the_example() -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE.read_text()))

    assert used
    assert used <= set(env_example())


def test_the_compose_redis_persists_every_write_and_never_evicts() -> None:
    text = COMPOSE.read_text()

    assert "image: redis:7" in text
    assert "--appendonly yes" in text
    assert "--maxmemory-policy noeviction" in text
    assert "redis-data:/data" in text
    assert "condition: service_healthy" in text


def check_sample_for_production(
    environment: dict[str, str], config: Path = SAMPLE_CONFIG
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ["PATH"], **environment}
    # As docker-compose.yml builds it for the provider.
    environment["REDIS_URL"] = f"redis://:{environment['REDIS_PASSWORD']}@redis:6379/0"
    return subprocess.run(
        [sys.executable, "-m", "oidc_link.cli", "check-config", "--production", str(config)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def test_the_sample_config_fails_the_production_check_with_the_example_values() -> None:
    result = check_sample_for_production(env_example())

    assert result.returncode == 1
    assert "problem(s) found for production." in result.stdout


def test_the_sample_config_passes_the_production_check_once_filled_in(tmp_path: Path) -> None:
    # What docs/operations.md tells the operator to do: generate each secret, set the real
    # addresses, and edit the sample client.
    kek = subprocess.run(
        [sys.executable, "-m", "oidc_link.cli", "keys", "generate-kek"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    filled = {
        **env_example(),
        "OIDC_LINK_ISSUER": "https://login.shop.test",
        "REDIS_PASSWORD": secrets.token_hex(32),
        "OIDC_LINK_KEY_ENCRYPTION_KEY": kek,
        "OIDC_LINK_SUBJECT_SALT": secrets.token_hex(32),
        "LINK_BASE_URL": "https://link.shop.test",
        "LINK_PUBLISHABLE_KEY": "pk_live_" + secrets.token_urlsafe(24),
        "SHOP_CLIENT_SECRET": secrets.token_hex(32),
    }
    config = tmp_path / "oidc-link.toml"
    config.write_text(SAMPLE_CONFIG.read_text().replace("shop.example.com", "www.shop.test"))

    result = check_sample_for_production(filled, config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Link mode live" in result.stdout


def test_the_sample_config_holds_no_secret_of_its_own() -> None:
    config = tomllib.loads(SAMPLE_CONFIG.read_text())

    assert config["keys"]["encryption_key"].startswith("${")
    assert config["subject_salt"].startswith("${")
    assert all(client["client_secret"].startswith("${") for client in config["clients"])


def test_the_image_is_built_in_two_stages_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    final = text.rsplit("\nFROM ", 1)[1]

    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "--find-links /wheels oidc-link" in text
    # The final stage copies the built environment and installs nothing itself.
    assert "COPY --from=builder /opt/oidc-link /opt/oidc-link" in final
    assert not re.search(r"pip |apt-get|gcc|build-essential", final)
    assert re.search(r"^USER 10001", final, flags=re.MULTILINE)
    assert 'CMD ["oidc-link", "serve"' in final
    assert "curl" not in final.split("HEALTHCHECK", 1)[1]


def test_the_builder_stage_copies_everything_the_wheel_is_built_from() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= {package.split(".")[0] for package in project["tool"]["setuptools"]["packages"]}
    needed |= set(project["tool"]["setuptools"]["package-dir"].values())
    builder = DOCKERFILE.read_text().split("\nFROM ", 2)[1]
    copied = {
        source.rstrip("/").removeprefix("./")
        for line in re.findall(r"^COPY (.+)$", builder, flags=re.MULTILINE)
        for source in line.split()[:-1]
    }
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert needed <= copied
    assert not needed & ignored
    assert {".env", "tests", ".git"} <= ignored


@pytest.fixture
def provider(embedded_redis: redis.Redis) -> Iterator[LiveServer]:
    server = start_live_server(embedded_redis)
    yield server
    server.stop()


def test_the_images_health_check_passes_on_a_serving_provider_and_fails_without_one(
    provider: LiveServer,
) -> None:
    check = re.search(
        r'HEALTHCHECK .*?CMD \["python", "-c", "(.+?)"\]', DOCKERFILE.read_text(), re.S
    )
    assert check, "the HEALTHCHECK is a python -c command"
    code = check.group(1)
    assert "http://127.0.0.1:8000/healthz" in code

    def run(url: str) -> int:
        probe = code.replace("http://127.0.0.1:8000", url)
        return subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, timeout=30
        ).returncode

    assert run(provider.url) == 0
    provider.stop()
    assert run(provider.url) != 0
