"""sealed.py writes and reads its values with binascii directly and derives keys with one
shared SHA-256 description: the same text, the same bytes, the same errors and the same
keys as base64's URL-safe functions and a fresh HKDF per call."""

from __future__ import annotations

import base64
import binascii
import os
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from oidc_link import sealed

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/="


def test_values_are_written_as_base64_writes_them() -> None:
    samples = [b"", b"\x00", b"\xff", b"\xfb\xff", b"\xfb\xef\xbe", bytes(range(256))]
    samples += [os.urandom(size) for size in range(1, 300) for _ in range(3)]
    for raw in samples:
        assert sealed._urlsafe_text(raw) == base64.urlsafe_b64encode(raw).decode()


def _read_by_base64(text: str) -> bytes | type[Exception]:
    try:
        return base64.urlsafe_b64decode(text.encode())
    except ValueError as error:
        return type(error)


def _read_by_sealed(text: str) -> bytes | type[Exception]:
    try:
        return sealed._urlsafe_bytes(text)
    except ValueError as error:
        return type(error)


def test_values_are_read_as_base64_reads_them_even_when_malformed() -> None:
    chosen = random.Random(16)  # noqa: S311 (test inputs, not secrets)
    texts = [base64.urlsafe_b64encode(os.urandom(size)).decode() for size in range(0, 120)]
    texts += [text.rstrip("=") for text in texts]  # padding dropped: an error for both
    texts += [
        "",
        "=",
        "====",
        "A",
        "AA",
        "AA=",
        "AAA",
        "AB==",
        "AB=C",
        "A B C D",
        "+/+/",
        "-_-_",
        "ab\ncd",
        "é",
        "abcé",
        "ab\x00cd",
        "ab!d",
        "ab==cd==",
    ]
    for _ in range(2000):  # any character of the alphabet, padding and a few others, anywhere
        length = chosen.randrange(0, 24)
        texts.append("".join(chosen.choice(_ALPHABET + " .!é\n") for _ in range(length)))
    for text in texts:
        assert _read_by_sealed(text) == _read_by_base64(text), text


def test_a_malformed_value_raises_what_base64_raises() -> None:
    with pytest.raises(binascii.Error):
        sealed._urlsafe_bytes("AAA")


def test_keys_are_the_ones_a_fresh_hkdf_derives() -> None:
    for browser_id, context in [("", ""), ("b" * 43, "flow_1"), ("é" * 10, "ctx" * 1000)]:
        fresh = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=context.encode(),
            info=b"oidc-link sealed value v1",
        ).derive(browser_id.encode())
        assert sealed._key(browser_id, context) == fresh


def test_sealed_values_open_as_before() -> None:
    key = os.urandom(32)
    for plaintext in [b"", b"x", os.urandom(1000)]:
        text = sealed.encrypt(key, plaintext, b"context")
        raw = base64.urlsafe_b64decode(text.encode())  # as the earlier version read it
        assert sealed.decrypt(key, base64.urlsafe_b64encode(raw).decode(), b"context") == plaintext
        assert sealed.decrypt(key, text, b"other") is None
        assert sealed.decrypt(key, text[:-4], b"context") is None
    assert sealed.unseal(sealed.seal("https://rp/cb?code=c", "b", "f"), "b", "f") == (
        "https://rp/cb?code=c"
    )
    assert sealed.unseal(sealed.seal("https://rp/cb?code=c", "b", "f"), "other", "f") is None
