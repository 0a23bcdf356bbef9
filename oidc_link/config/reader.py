"""Typed reading of raw configuration tables: ``${VAR}`` references and collected problems."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from oidc_link.errors import ConfigProblem

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_T = TypeVar("_T")


class RecordingEnvironment(Mapping[str, str]):
    """The environment as the configuration reads it, remembering every name looked up
    (present or not), so that a server's workers can drop what held settings and secrets."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        # Mapping's get() and `in` come through here too.
        self.names.add(name)
        return self._environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


class Reader:
    """Reads typed fields, resolving ``${VAR}`` references and collecting problems."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[ConfigProblem] = []

    def problem(self, name: str, message: str) -> None:
        self.problems.append(ConfigProblem(name, message))

    def reject_unknown(self, table: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        for key in sorted(set(table) - known):
            self.problem(f"{prefix}{key}", "unknown setting")

    def table(self, value: Any, name: str) -> Mapping[str, Any]:
        if isinstance(value, Mapping):
            return value
        self.problem(name, "must be a table")
        return {}

    def text(
        self, table: Mapping[str, Any], key: str, name: str | None = None, *, required: bool = True
    ) -> str | None:
        name = name or key
        value = table.get(key)
        if value is None or value == "":
            if required:
                self.problem(name, "is required")
            return None
        if not isinstance(value, str):
            self.problem(name, "must be a string")
            return None
        return self._resolve(value, name)

    def text_list(self, table: Mapping[str, Any], key: str, name: str) -> tuple[str, ...] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(name, "must be a list of strings")
            return ()
        resolved = (self._resolve(item, name) for item in value)
        return tuple(item for item in resolved if item is not None)

    def flag(
        self, table: Mapping[str, Any], key: str, name: str, default: bool = False
    ) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.problem(name, "must be true or false")
            return default
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, name: str, choices: tuple[str, ...]
    ) -> str:
        """One of ``choices``; the first is the default."""
        value = self.text(table, key, name, required=False) or choices[0]
        if value not in choices:
            self.problem(name, f"must be one of {', '.join(choices)}")
            return choices[0]
        return value

    def positive_number(
        self, table: Mapping[str, Any], key: str, name: str, default: float
    ) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.problem(name, "must be a positive number of seconds")
            return default
        return float(value)

    def count(self, table: Mapping[str, Any], key: str, name: str, default: int) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.problem(name, "must be a whole number, 0 or more")
            return default
        return value

    def positive_int(self, table: Mapping[str, Any], key: str, name: str, default: int) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.problem(name, "must be a positive whole number")
            return default
        return value

    def positive_int_table(self, raw: Any, section: str, kind: type[_T]) -> _T:
        """A table whose every field is a positive whole number with a default in ``kind``
        (a dataclass such as [lifetimes] or [limits])."""
        table = self.table(raw, section)
        defaults = kind()
        names = list(defaults.__dataclass_fields__)  # type: ignore[attr-defined]
        self.reject_unknown(table, f"{section}.", set(names))
        return kind(
            **{
                name: self.positive_int(table, name, f"{section}.{name}", getattr(defaults, name))
                for name in names
            }
        )

    def _resolve(self, value: str, name: str) -> str | None:
        missing = [m for m in _ENV_REFERENCE.findall(value) if m not in self.environ]
        if missing:
            self.problem(name, f"refers to unset environment variable {', '.join(missing)}")
            return None
        return _ENV_REFERENCE.sub(lambda m: self.environ[m.group(1)], value)


def is_https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
