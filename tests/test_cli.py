"""The oidc-link command: check-config reports every problem with its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from oidc_link.cli import main

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


def test_serve_refuses_an_invalid_config_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)

    assert main(["serve", "--config", str(path), "--port", "0"]) == 1
    assert "clients[0].redirect_uris" in capsys.readouterr().err
