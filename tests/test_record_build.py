"""Record._build gives what the dataclass's __init__ gives (records.py), or calls it."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest

from oidc_link import models
from oidc_link.platform import account_links, account_sessions
from oidc_link.records import Record, _shape

RECORD_TYPES = [
    cls
    for module in (models, account_links, account_sessions)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, Record) and cls is not Record
]
_rng = random.Random(16)  # noqa: S311 - test inputs, not secrets
_VALUES: list[Any] = [None, "", "x", 0, 7, True, (), ("a",), {"k": "v"}, [1], "é"]


def _outcome(build: Any, data: dict[str, Any]) -> tuple[str, Any]:
    try:
        built = build(dict(data))
    except Exception as error:  # the error is what is compared
        return "raised", (type(error), str(error))
    return "built", (type(built), built, dict(sorted(vars(built).items())))


def _inputs(cls: type) -> list[dict[str, Any]]:
    names = [item.name for item in dataclasses.fields(cls)]
    cases: list[dict[str, Any]] = []
    for count in range(len(names) + 1):
        for chosen in itertools.islice(itertools.combinations(names, count), 40):
            cases.append({name: _rng.choice(_VALUES) for name in chosen})
    full = {name: _rng.choice(_VALUES) for name in names}
    cases += [full, {**full, "unknown": 1}, {"unknown": 1}, {}]
    cases += [{name: _rng.choice(_VALUES) for name in names if _rng.random() < 0.8}
              for _ in range(200)]  # fmt: skip
    return cases


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda cls: cls.__name__)
def test_build_is_init(cls: type) -> None:
    for data in _inputs(cls):
        assert _outcome(cls._build, data) == _outcome(lambda d: cls(**d), data), data


def test_the_read_records_take_the_shortcut_and_signing_keys_do_not() -> None:
    for cls in (models.Identity, models.Flow, models.SsoSession, models.AuthorizationCode,
                models.AccessToken, models.RefreshToken):  # fmt: skip
        assert _shape(cls) is not None, cls
    assert _shape(models.SigningKey) is None  # a default factory


def test_types_whose_init_does_more_are_built_by_it() -> None:
    # Plain dataclasses, not Records: test_record_encoding.py lists every Record subclass.
    build = Record._build.__func__  # type: ignore[attr-defined]

    @dataclasses.dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    @dataclasses.dataclass
    class WithInitVar:
        value: int
        extra: dataclasses.InitVar[int] = 0

    @dataclasses.dataclass(slots=True)
    class Slotted:
        value: int

    for cls in (Checked, WithInitVar, Slotted):
        assert _shape(cls) is None
    with pytest.raises(ValueError, match="negative"):
        build(Checked, {"value": -1})
    assert build(Slotted, {"value": 1}) == Slotted(1)


def test_a_built_record_is_frozen_and_compares_and_hashes_as_one_from_init() -> None:
    identity = models.Identity._build({"email": "a@example.com", "name": None, "auth_time": 1})
    same = models.Identity("a@example.com", None, 1)
    assert identity == same and hash(identity) == hash(same) and repr(identity) == repr(same)
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.email = "b@example.com"  # type: ignore[misc]
    assert dataclasses.replace(identity, name="A") == models.Identity("a@example.com", "A", 1)
