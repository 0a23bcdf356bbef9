"""records.py writes and reads records with orjson only where it gives what the standard
library's json gives: the same text (json.dumps with sorted keys, no spaces, ASCII) and the
same values (json.loads), checked here on many generated records and on edge cases (text
beyond ASCII and DEL, integers beyond 64 bits, NaN, lone surrogates, invalid JSON)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields
from typing import Any

import pytest

from oidc_link import records
from oidc_link.models import Flow, FlowStep, Identity, SsoSession
from oidc_link.records import Record, _decode, _plain
from tests.test_record_encoding import EXAMPLES, as_asdict_wrote_it

TEXTS = [
    "",
    "plain",
    "zoë",
    "\x7f",
    "a\x00b\x1fc",
    'quote " backslash \\ slash /',
    "\n\r\t\b\f",
    "\u2028\u2029",
    "😀",
    "São Paulo ✓",
    "\ud800",  # a lone surrogate: json escapes it, orjson refuses it
]
INTEGERS = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
]


def random_identity(rng: random.Random) -> Identity:
    return Identity(
        email=rng.choice(TEXTS) + "@example.test",
        name=rng.choice([None, *TEXTS]),
        auth_time=rng.choice(INTEGERS),
        amr=tuple(rng.sample(TEXTS, rng.randrange(3))),
        city=rng.choice([None, "", *TEXTS]),
    )


def random_flow(rng: random.Random) -> Flow:
    return Flow(
        id=rng.choice(TEXTS),
        browser_digest="d" * 43,
        client_id=rng.choice(TEXTS),
        authorization={rng.choice(TEXTS): rng.choice(TEXTS) for _ in range(rng.randrange(4))},
        csrf_token=rng.choice(TEXTS),
        created_at=rng.choice(INTEGERS),
        expires_at=rng.choice(INTEGERS),
        step=rng.choice(list(FlowStep)),
        email=rng.choice([None, *TEXTS]),
        code_attempts=rng.choice(INTEGERS),
        identity=rng.choice([None, random_identity(rng)]),
        locale=rng.choice([None, "", "fr"]),
    )


def random_session(rng: random.Random) -> SsoSession:
    return SsoSession(
        sid=rng.choice(TEXTS),
        identity=random_identity(rng),
        created_at=rng.choice(INTEGERS),
        absolute_expiry=rng.choice(INTEGERS),
        idle_expiry=rng.choice(INTEGERS),
        device=rng.choice([None, *TEXTS]),
        left_sectors=tuple(rng.sample(TEXTS, rng.randrange(3))),
    )


def json_wrote_it(record: Record) -> str:
    """What the encoder wrote before orjson: the standard library's json alone."""
    data = record._as_dict()
    for name in record.omitted_when_empty:
        if not data[name]:
            del data[name]
    return records._encode(data)


@pytest.mark.parametrize("seed", range(40))
def test_generated_records_are_written_as_json_writes_them(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - repeatable test input, no secret
    for _ in range(25):
        for record in (random_flow(rng), random_session(rng), random_identity(rng)):
            assert record.to_record() == json_wrote_it(record)


def test_every_example_record_is_written_as_json_writes_it() -> None:
    for examples in EXAMPLES.values():
        for record in examples:
            assert record.to_record() == json_wrote_it(record) == as_asdict_wrote_it(record)


def test_every_record_type_here_is_plain_so_it_takes_the_fast_path() -> None:
    assert all(_plain(record_type) for record_type in EXAMPLES)


@dataclass(frozen=True)
class Measured:
    """Fields of a type the fast path leaves to json (not a Record: test_record_encoding.py
    wants an example of every Record subclass)."""

    value: float
    extra: Any = None


def test_a_field_of_a_float_or_any_leaves_the_record_type_to_json() -> None:
    assert not _plain(Measured)


def test_why_orjson_cannot_write_floats_for_json() -> None:
    for value in (1e-7, 2.5e-05, float("nan"), float("inf")):
        data = {"value": value}
        assert records._encode_fast(data) != records._encode(data)


def test_a_record_holding_something_json_cannot_write_is_still_refused() -> None:
    flow = random_flow(random.Random(0))  # noqa: S311 - repeatable test input, no secret
    broken = Flow(**{**{f.name: getattr(flow, f.name) for f in fields(Flow)}, "email": object()})
    with pytest.raises(TypeError):
        broken.to_record()


READ_CASES = [
    '{"a":1}',
    '{"a":1e400}',
    '{"a":-1e400}',
    '{"a":-0}',
    '{"a":-0.0}',
    '{"a":1,"a":2}',
    '{"a":"\\ud800"}',
    '{"a":"\\ud83d\\ude00"}',
    '{"a":"\\u0000\\u001f\\u007f\\u00e9"}',
    '{"a":"é 😀"}',
    '{"a":1234567890123456789}',
    '{"a":9223372036854775807}',
    '{"a":9223372036854775808}',
    '{"a":18446744073709551615}',
    '{"a":18446744073709551616}',
    '{"a":-9223372036854775808}',
    '{"a":-9223372036854775809}',
    '{"a":123456789012345678901234567890}',
    '{"a":"1234567890123456789012345"}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":-Infinity}',
    '{"a":1.7976931348623157e308}',
    '{"a":5e-324}',
    '{"a":0.1,"b":1E5,"c":[1,2,{"d":null}],"e":true,"f":false}',
    ' {"a" : [1, 2] } ',
    '{"a":"\\/"}',
    "[1,2]",
    '"text"',
    "17",
]
INVALID = ["", "{", '{"a":}', "{'a':1}", '{"a":1} x', "\ufeff{}", '{"a":"\x01"}', "nul"]


def exactly(value: Any) -> str:
    """A value with its types spelled out: 1 and 1.0, or -0.0 and 0.0, differ here."""
    return repr(value)


@pytest.mark.parametrize("raw", READ_CASES)
def test_a_record_is_read_as_json_reads_it(raw: str) -> None:
    assert exactly(_decode(raw)) == exactly(json.loads(raw))
    assert exactly(_decode(raw.encode())) == exactly(json.loads(raw.encode()))


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_json_is_refused_as_json_refuses_it(raw: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(raw)
    with pytest.raises(json.JSONDecodeError) as ours:
        _decode(raw)
    assert str(ours.value) == str(expected.value)


@pytest.mark.parametrize("seed", range(20))
def test_generated_records_read_back_as_json_reads_them(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - repeatable test input, no secret
    for _ in range(25):
        for record in (random_flow(rng), random_session(rng)):
            raw = record.to_record()
            assert exactly(_decode(raw)) == exactly(json.loads(raw))
            record_type = type(record)
            as_json_read_it = record_type._from_dict(record_type._known(json.loads(raw)))
            assert record_type.from_record(raw) == as_json_read_it
