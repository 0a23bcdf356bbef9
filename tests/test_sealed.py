"""sealed.py writes and reads its values with binascii directly and derives keys with one
shared SHA-256 description: the same text, the same bytes, the same errors and the same
keys as base64's URL-safe functions and a fresh HKDF per call. A Cipher (one key's AES-GCM,
made once) seals and opens as ``encrypt`` and ``decrypt`` do; the sandbox's follows its
sealing key when that key is read anew."""

from __future__ import annotations

import base64
import binascii
import os
import random

import pytest
import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from oidc_link import sealed
from oidc_link.clock import FixedClock
from oidc_link.config import SandboxUser
from oidc_link.link.sandbox import SandboxLinkClient
from oidc_link.store import Store, keyspace

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


def test_a_cipher_seals_and_opens_as_encrypt_and_decrypt_do() -> None:
    key, other = os.urandom(32), os.urandom(32)
    cipher = sealed.Cipher(key)
    for plaintext in [b"", b"x", os.urandom(1000)]:
        by_cipher = cipher.encrypt(plaintext, b"context")
        assert sealed.decrypt(key, by_cipher, b"context") == plaintext
        assert cipher.decrypt(sealed.encrypt(key, plaintext, b"context"), b"context") == plaintext
        assert cipher.decrypt(by_cipher, b"other") is None
        assert cipher.decrypt(by_cipher[:-4] + "AAAA", b"context") is None
        assert cipher.decrypt("not base64!", b"context") is None
        assert sealed.Cipher(other).decrypt(by_cipher, b"context") is None


JENNY = SandboxUser(email="jenny@example.com", phone="+15555550123", name="Jenny")


def test_the_sandbox_follows_its_sealing_key_when_it_is_read_anew(
    clock: FixedClock, redis_client: redis.Redis
) -> None:
    """A worker whose key Redis lost opens a handle the worker that made the new key sealed,
    and from then on seals with the new key itself."""
    messages: list[str] = []
    before = SandboxLinkClient([JENNY], clock, messages.append, Store(redis_client, clock).sandbox)
    assert before.lookup(JENNY.email).client_secret is not None  # sealed with the first key
    redis_client.delete(keyspace.SANDBOX_KEY)
    after = SandboxLinkClient([JENNY], clock, messages.append, Store(redis_client, clock).sandbox)

    made_after = after.lookup(JENNY.email).client_secret
    assert made_after is not None
    sent = before.start_verification(JENNY.email, made_after)  # opens: the key read anew
    assert after.start_verification(JENNY.email, sent.client_secret).redacted_phone
