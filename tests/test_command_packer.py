"""store/command_packer.py sends exactly the bytes redis-py's own hiredis packer sends, for
every kind of argument, and refuses what redis-py refuses with the same DataError; the
production client uses it and round-trips text that is not ASCII."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer

from oidc_link.store.command_packer import BUFFER_CUTOFF, CommandPacker
from oidc_link.store.connection import connect


def redis_py_packer() -> HiredisRespSerializer:
    """What redis-py builds for a connection when hiredis is installed."""
    encode = Encoder("utf-8", "strict", decode_responses=True).encode
    return HiredisRespSerializer(PythonRespSerializer(BUFFER_CUTOFF, encode).pack, encode)


COMMANDS = [
    ("GET", "oidc-link:v1:flow:flow_abc"),
    ("SET", "oidc-link:v1:flow:flow_abc", '{"email":"jenny@example.com"}', "EX", 600, "NX"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", "value", 1_800_000_000, 2.5, 1e-7),
    ("HSET", "key", "name", "Zoë Ørsted 🙂", "bytes", b"\x00\xff raw"),
    ("CLIENT ID",),
    ("SCRIPT LOAD", "return 1"),
    (b"GET", "a key sent with a bytes command name"),
    ("SET", "k", bytearray(b"from a bytearray")),
    ("SET", "k", memoryview(b"from a memoryview")),
    ("SET", "k", -0.0),
    ("SET", "k", ""),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_a_command_is_packed_into_the_same_bytes_as_redis_py_packs_it(command: tuple) -> None:
    ours = b"".join(bytes(chunk) for chunk in CommandPacker().pack(*command))
    theirs = b"".join(bytes(chunk) for chunk in redis_py_packer().pack(*command))

    assert ours == theirs


@pytest.mark.parametrize("value", [True, None, object()], ids=["bool", "None", "object"])
def test_an_argument_redis_cannot_take_raises_redis_pys_data_error(value: object) -> None:
    with pytest.raises(redis.DataError):
        CommandPacker().pack("SET", "k", value)


@pytest.fixture
def production_client(redis_server_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_server_url)
    yield client
    client.close()


def test_the_production_client_packs_with_it_and_round_trips_text_that_is_not_ascii(
    production_client: redis.Redis,
) -> None:
    connection = production_client.connection_pool.get_connection()
    try:
        assert isinstance(connection._command_packer, CommandPacker)
    finally:
        production_client.connection_pool.release(connection)
    pipeline = production_client.pipeline(transaction=True)
    pipeline.set("packer:text", "Zoë Ørsted 🙂", ex=60)
    pipeline.hset("packer:hash", mapping={"n": 7, "f": 2.5})
    pipeline.execute()

    assert production_client.get("packer:text") == "Zoë Ørsted 🙂"
    assert production_client.hgetall("packer:hash") == {"n": "7", "f": "2.5"}
    with pytest.raises(redis.DataError):
        production_client.set("packer:bool", True)  # type: ignore[arg-type]
    production_client.delete("packer:text", "packer:hash")
