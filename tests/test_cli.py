"""The oidc-link command: check-config, serve refusing bad config, and the installed demo."""

from __future__ import annotations

import base64
import json
import logging
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from oidc_link.cli import main
from oidc_link.demo import DEMO_BRAND
from oidc_link.store import keyspace

GOOD = """
issuer = "https://login.example.test"

[[link.sandbox.users]]
email = "jenny@example.com"
phone = "+14155550123"

[[clients]]
client_id = "shop"
client_secret = "0123456789abcdef0123"
redirect_uris = ["https://shop.example.test/callback"]
"""

BAD = """
issuer = "https://login.example.test/"

[[clients]]
client_id = "shop"
token_endpoint_auth_method = "none"
client_secret = "0123456789abcdef0123"
redirect_uris = ["http://shop.example.test/callback"]
"""


def test_check_config_accepts_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)

    assert main(["check-config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_config_lists_every_problem_with_its_field_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)

    assert main(["check-config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: issuer:" in out
    assert f"{path}: clients[0].client_secret:" in out
    assert f"{path}: clients[0].redirect_uris:" in out
    assert "3 problem(s) found." in out


def test_check_config_parses_inline_client_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(
        GOOD
        + """
[[clients]]
client_id = "api"
token_endpoint_auth_method = "private_key_jwt"
redirect_uris = ["https://api.example.test/callback"]
[[clients.jwks.keys]]
kty = "oct"
k = "c2VjcmV0LWtleS1tYXRlcmlhbC1ub3QtYWxsb3dlZA"
"""
    )

    assert main(["check-config", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: " in out
    assert "'api'" in out
    assert "1 problem(s) found." in out


def test_serve_refuses_an_invalid_config_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)

    assert main(["serve", "--config", str(path), "--port", "0"]) == 1
    assert "clients[0].redirect_uris" in capsys.readouterr().err


def test_the_installed_demo_command_serves_the_hosted_sign_in_page(tmp_path: Path) -> None:
    """The README's demo command, run from outside the checkout, so the installed package
    (with the templates and stylesheet its wheel ships) is what answers."""
    script = shutil.which("oidc-link", path=str(Path(sys.executable).parent))
    assert script, "oidc-link is not installed next to this Python"
    process = subprocess.Popen(
        [script, "demo", "--port", "0", "--rp-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        urls = _printed_urls(process, count=2)
        provider_url, rp_url = urls
        with requests.Session() as browser:
            page = browser.get(rp_url + "/login", timeout=10)
            stylesheet = browser.get(provider_url + "/static/site.css", timeout=10)

        assert page.url.startswith(provider_url + "/authorize?")  # its answer: the email page
        assert 'autocomplete="email"' in page.text
        assert "Sandbox" in page.text
        assert stylesheet.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_the_demo_command_with_brand_shows_the_shops_links_and_accent(tmp_path: Path) -> None:
    script = shutil.which("oidc-link", path=str(Path(sys.executable).parent))
    assert script, "oidc-link is not installed next to this Python"
    process = subprocess.Popen(
        [script, "demo", "--port", "0", "--rp-port", "0", "--brand"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _, rp_url = _printed_urls(process, count=2)
        page = requests.get(rp_url + "/login", timeout=10)

        assert f'href="{DEMO_BRAND["policy_uri"]}"' in page.text
        assert f'href="{DEMO_BRAND["tos_uri"]}"' in page.text
        assert f"/brand/accent-{DEMO_BRAND['accent_color'][1:]}.css" in page.text
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def _printed_urls(process: subprocess.Popen[str], count: int) -> list[str]:
    """Read the demo's console until it has printed ``count`` URLs (or give up after 20 s)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    deadline = time.monotonic() + 20
    urls: list[str] = []
    while len(urls) < count and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        urls += re.findall(r"(?:Provider \(issuer\)|Sample shop \(RP\)):\s+(\S+)", line)
    assert len(urls) == count, f"the demo printed {urls}"
    return urls


def _key_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(f'redis_url = "{redis_url}"\n' + GOOD)
    return path


def test_keys_commands_rotate_back_up_and_restore_the_signing_keys(
    tmp_path: Path,
    redis_server_url: str,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis.Redis.from_url(redis_server_url).flushdb()
    config = str(_key_config(tmp_path, redis_server_url))
    # The process environment is where an operator puts the key-encryption key.
    monkeypatch.setenv("OIDC_LINK_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"k" * 32).decode())
    backup = tmp_path / "backup.json"

    assert main(["keys", "--config", config, "rotate"]) == 0
    listed = capsys.readouterr().out
    assert "current   RS256" in listed
    assert "next      RS256" in listed
    assert main(["keys", "--config", config, "export", str(backup)]) == 0
    assert len(json.loads(backup.read_text())["keys"]) == 2

    redis.Redis.from_url(redis_server_url).flushdb()
    capsys.readouterr()
    assert main(["keys", "--config", config, "import", str(backup)]) == 0
    assert "Restored 2 key(s)" in capsys.readouterr().out

    next_kid = next(k["kid"] for k in json.loads(backup.read_text())["keys"] if k["slot"] != 0)
    # "--": a kid is base64url and may start with "-", like an option would.
    assert main(["keys", "--config", config, "retire", "--", next_kid]) == 0
    assert main(["keys", "--config", config, "list"]) == 0
    assert next_kid not in capsys.readouterr().out.split("STATE", 1)[1]


def test_keys_commands_refuse_a_wrong_key_encryption_key_and_change_nothing(
    tmp_path: Path,
    redis_server_url: str,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    config = str(_key_config(tmp_path, redis_server_url))
    monkeypatch.setenv("OIDC_LINK_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"a" * 32).decode())
    assert main(["keys", "--config", config, "list"]) == 0
    before = client.hgetall(keyspace.key_ring("RS256"))

    monkeypatch.setenv("OIDC_LINK_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"b" * 32).decode())
    assert main(["keys", "--config", config, "rotate", "--now"]) == 1

    assert "does not open" in capsys.readouterr().err
    assert client.hgetall(keyspace.key_ring("RS256")) == before


def test_generate_kek_prints_32_random_bytes(capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "generate-kek"]) == 0
    first = capsys.readouterr().out.strip()
    main(["keys", "generate-kek"])

    assert len(base64.urlsafe_b64decode(first)) == 32
    assert capsys.readouterr().out.strip() != first


def test_the_servers_request_log_leaves_out_query_strings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    main(["keys", "generate-kek"])  # any command sets up logging
    caplog.set_level(logging.INFO, logger="werkzeug")

    logging.getLogger("werkzeug").info(
        '%s - - [%s] "%s" %s %s',
        "127.0.0.1",
        "now",
        "GET /authorize?client_id=shop&id_token_hint=eyJ.secret.sig&login_hint=a@b.c HTTP/1.1",
        302,
        "-",
    )

    assert "GET /authorize?[redacted] HTTP/1.1" in caplog.text
    assert "eyJ.secret.sig" not in caplog.text
    assert "a@b.c" not in caplog.text
