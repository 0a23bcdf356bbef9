"""How a stored dataclass becomes a JSON record and back (``Record``), so that versions
sharing one Redis during a rolling upgrade read each other's records: models.py's records
and the platform's build on it."""

from __future__ import annotations

import functools
import json
from dataclasses import fields
from typing import Any, Self


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
        return _encode(data)

    def _as_dict(self) -> dict[str, Any]:
        """This record's fields by name, shallow: the encoder writes a nested record through
        ``_nested_record``, and tuples as lists, so nothing is copied on the way (what
        ``dataclasses.asdict`` did, deepcopying every value, at a sign-in's every write)."""
        return {name: getattr(self, name) for name in _field_order(type(self))}

    @classmethod
    def from_record(cls, raw: str | bytes) -> Self:
        return cls._from_dict(cls._known(json.loads(raw)))

    @classmethod
    def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` without the fields this version does not have (a newer one wrote them)."""
        names = _field_names(cls)
        if names.issuperset(data):  # the usual case: one C-level pass, no copy
            return data
        return {name: value for name, value in data.items() if name in names}

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


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


# json.dumps(data, separators=(",", ":"), sort_keys=True), its encoder built once.
_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=_nested_record).encode
