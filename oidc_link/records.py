"""How a stored dataclass becomes a JSON record and back (``Record``), so that versions
sharing one Redis during a rolling upgrade read each other's records: models.py's records
and the platform's build on it."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import fields
from typing import Any, Self

import orjson


class Record:
    """JSON (de)serialisation shared by every stored dataclass.

    Old and new versions of oidc-link share one Redis during a rolling upgrade (and after a
    rollback), so records travel both ways: a reader drops fields it does not know, and a
    field added later is left out while it is empty, so that a version before it can read
    the record as long as the new field is unused.
    """

    # Fields left out of the record while empty (falsy): added after other versions shipped.
    omitted_when_empty: frozenset[str] = frozenset()

    def to_record(self) -> str:
        data = self._as_dict()
        for name in self.omitted_when_empty:
            if not data[name]:
                del data[name]
        if _plain(type(self)):
            fast = _encode_fast(data)
            if fast is not None:
                return fast
        return _encode(data)

    def _as_dict(self) -> dict[str, Any]:
        """This record's fields by name, shallow: the encoder writes a nested record through
        ``_nested_record``, and tuples as lists, so nothing is copied on the way (what
        ``dataclasses.asdict`` did, deepcopying every value, at a sign-in's every write)."""
        return {name: getattr(self, name) for name in _field_order(type(self))}

    @classmethod
    def from_record(cls, raw: str | bytes) -> Self:
        return cls._from_dict(cls._known(_decode(raw)))

    @classmethod
    def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` without the fields this version does not have (a newer one wrote them)."""
        names = _field_names(cls)
        if names.issuperset(data):  # the usual case: one C-level pass, no copy
            return data
        return {name: value for name, value in data.items() if name in names}

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls._build(data)

    @classmethod
    def _build(cls, data: dict[str, Any]) -> Self:
        """``cls(**data)``: the same instance, built without the frozen dataclass's
        ``__init__`` (a call through ``object.__setattr__`` per field, most of a record's
        read) where that ``__init__`` would only set the fields: every field named in
        ``data`` is one, every required one is there. Anything else (a missing field, an
        unknown one, a type with a default factory or ``__post_init__``) goes to
        ``__init__``, which raises or builds as before."""
        shape = _shape(cls)
        if shape is None or not (shape.names.issuperset(data) and shape.required <= data.keys()):
            return cls(**data)
        built = object.__new__(cls)
        fields_of = built.__dict__
        fields_of.update(shape.defaults)
        fields_of.update(data)
        return built


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What ``__init__`` would do with a record type's fields: the names, those without a
    default, and the defaults of the others."""

    names: frozenset[str]
    required: frozenset[str]
    defaults: dict[str, Any]


@functools.cache
def _shape(record_type: type) -> _Shape | None:
    """A dataclass's ``_Shape``, read once per type; None when its ``__init__`` does more
    than set each field from its argument or a plain default (a default factory, an
    ``init=False`` or ``InitVar`` field, ``__post_init__``, slots, an ``__init__`` of its
    own): then records of that type are built by calling it."""
    params = getattr(record_type, "__dataclass_params__", None)
    if params is None or not params.init or hasattr(record_type, "__post_init__"):
        return None
    if "__slots__" in record_type.__dict__ or "__init__" not in record_type.__dict__:
        return None
    declared = dataclasses.fields(record_type)
    if len(declared) != len(getattr(record_type, "__dataclass_fields__", {})):
        return None  # an InitVar or ClassVar pseudo-field
    if any(not item.init or item.default_factory is not dataclasses.MISSING for item in declared):
        return None
    return _Shape(
        names=frozenset(item.name for item in declared),
        required=frozenset(item.name for item in declared if item.default is dataclasses.MISSING),
        defaults={
            item.name: item.default for item in declared if item.default is not dataclasses.MISSING
        },
    )


@functools.cache
def _field_names(record_type: type) -> frozenset[str]:
    """The dataclass fields of a record type, read once per type (every load needs them)."""
    return frozenset(item.name for item in fields(record_type))


@functools.cache
def _field_order(record_type: type) -> tuple[str, ...]:
    """The dataclass fields of a record type in order, read once per type (every write)."""
    return tuple(item.name for item in fields(record_type))


def _nested_record(value: object) -> dict[str, Any]:
    """A record inside a record, written as ``asdict`` did but for its own fields left out
    while empty (Identity's ``city``: so a version before it reads the identity of anyone
    without one); anything else is not JSON."""
    if isinstance(value, Record):
        data = value._as_dict()
        for name in value.omitted_when_empty:
            if not data[name]:
                del data[name]
        return data
    raise TypeError(f"{type(value).__name__} is not a record field JSON can hold")


# json.dumps(data, separators=(",", ":"), sort_keys=True), its encoder built once: what a
# record is, byte for byte (the stored layout).
_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=_nested_record).encode

# The same text from orjson (about 8 times faster) where the two agree: keys sorted, nested
# records through ``_nested_record`` (not orjson's own dataclass writer, which knows nothing
# of omitted fields), nothing orjson would write that json would refuse.
_FAST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
_FAST_OPTIONS |= orjson.OPT_PASSTHROUGH_DATETIME


def _encode_fast(data: dict[str, Any]) -> str | None:
    """``_encode(data)`` by orjson, or None where the two could differ: orjson writes
    characters beyond ASCII as they are and DEL unescaped, where json writes ``\\uXXXX``,
    and refuses integers beyond 64 bits (json writes them)."""
    try:
        text = orjson.dumps(data, default=_nested_record, option=_FAST_OPTIONS)
    except orjson.JSONEncodeError:
        return None
    if not text.isascii() or b"\x7f" in text:
        return None
    return text.decode()


# The field types whose values json and orjson write alike (no float: the two spell
# exponents and NaN differently).
_PLAIN_LEAVES = frozenset({str, int, bool, type(None)})


@functools.cache
def _plain(record_type: type) -> bool:
    """Whether every field of ``record_type`` is declared as a type whose values orjson
    writes as json does: str, int, bool, None, tuples, lists and str-keyed dicts of those,
    records of such fields. Read once per type; a record with any other field (a float,
    ``Any``) is always written by json."""
    hints = typing.get_type_hints(record_type)
    return all(_plain_type(hints[name]) for name in _field_order(record_type))


def _plain_type(hint: Any) -> bool:
    if hint in _PLAIN_LEAVES:
        return True
    if isinstance(hint, type) and issubclass(hint, Record):
        return _plain(hint)
    if isinstance(hint, type) and issubclass(hint, str):  # a StrEnum: written as its text
        return True
    origin = typing.get_origin(hint)
    arguments = [a for a in typing.get_args(hint) if a is not Ellipsis]
    if origin in (types.UnionType, typing.Union, tuple, list):
        return all(_plain_type(a) for a in arguments)
    if origin is dict:
        return arguments[0] is str and _plain_type(arguments[1])
    return False


# Each ASCII digit as "0", every other byte as " ": a run of _LONG_RUN in the translated text
# is a number of 19 digits or more, which orjson reads as a float beyond 64 bits where json
# reads an int. (A regular expression for the same runs costs more than json itself.)
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_RUN = b"0" * 19


def _decode(raw: str | bytes) -> Any:
    """``json.loads(raw)``, by orjson (about 3 times faster) when it gives the same answer:
    orjson refuses what json reads otherwise (NaN, lone surrogates, numbers out of a float's
    range, bytes not UTF-8), and the long numbers it would read otherwise go to json."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _LONG_RUN not in data.translate(_DIGITS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)
