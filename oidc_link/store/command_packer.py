"""Turns each command into the bytes Redis reads (RESP) with one call into hiredis, for the
clients connection.py builds. Packs only: what a command means is its aggregate's.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer

# redis-py's default: a connection packs into chunks of this size before sending.
BUFFER_CUTOFF = 6000


class CommandPacker:
    """redis-py's hiredis packer, without its per-argument work in Python.

    redis-py's own first scans every argument for memoryviews, encodes each one in Python
    (str to UTF-8, numbers through ``repr``) and only then calls hiredis, which does the same
    conversions in C: about 6 of the 7 µs it spends on a command. This one hands the
    arguments to hiredis as they are. Anything hiredis refuses (a memoryview or bytearray,
    a bool, None) goes to redis-py's packer, which sends what it can and raises its own
    DataError for the rest, exactly as before.
    """

    def __init__(self) -> None:
        # The packer redis-py itself builds when hiredis is installed (its Python packer
        # for memoryviews, which it sends without copying).
        encode = Encoder("utf-8", "strict", decode_responses=True).encode
        python = PythonRespSerializer(BUFFER_CUTOFF, encode)
        self._fallback = HiredisRespSerializer(python.pack, encode)

    def pack(self, *args: Any) -> list[bytes]:
        try:
            command = args[0]
            # Commands redis-py spells with a space ("CLIENT ID", "SCRIPT LOAD") are sent
            # as separate words, as its own packer does.
            if " " in command:
                args = (*command.split(), *args[1:])
            return [hiredis.pack_command(args)]
        except TypeError:
            return self._fallback.pack(*args)
