"""ids.py's random values are what ``secrets.token_urlsafe`` makes: the same unpadded URL-safe
base64 of as many bytes from ``os.urandom``, for every length and every byte value."""

from __future__ import annotations

import base64
import os
import re

import pytest

from oidc_link import ids


def token_urlsafe_text(raw: bytes) -> str:
    """What secrets.token_urlsafe does with the bytes it draws."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize("size", range(0, 70))
def test_url_safe_text_is_token_urlsafes_text_for_every_length(size: int) -> None:
    for raw in (os.urandom(size), b"\xff" * size, b"\x00" * size, b"\xfb\xef\xbe" * size):
        assert ids.url_safe_text(raw) == token_urlsafe_text(raw)


def test_every_byte_value_maps_as_token_urlsafe_maps_it() -> None:
    every_byte = bytes(range(256)) * 3
    for start in range(3):
        assert ids.url_safe_text(every_byte[start:]) == token_urlsafe_text(every_byte[start:])


def test_secrets_and_ids_draw_their_bytes_from_os_urandom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[int] = []

    def urandom(size: int) -> bytes:
        drawn.append(size)
        return b"\xfb" * size

    monkeypatch.setattr(ids.os, "urandom", urandom)
    assert ids.new_secret(32) == token_urlsafe_text(b"\xfb" * 32)
    assert ids.new_id("flow") == "flow_" + token_urlsafe_text(b"\xfb" * 12)
    assert drawn == [32, 12]


def test_new_secrets_are_long_url_safe_and_distinct() -> None:
    secrets = {ids.new_secret() for _ in range(1000)}
    assert len(secrets) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", secret) for secret in secrets)
