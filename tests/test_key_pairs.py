"""store/key_pairs.py names the same keys as keyspace.py's one-by-one functions."""

from __future__ import annotations

import random
import string

import pytest

from oidc_link.ids import new_secret
from oidc_link.store import key_pairs, keyspace

_rng = random.Random(27)  # noqa: S311 - test inputs, not secrets
_ALPHABET = string.ascii_letters + string.digits + "-_.{}:\x00é€ "


def _texts() -> list[str]:
    fixed = ["", ".", "x", "{", "}", "{}", "a.b", "é", "fam_.x", "fam_x.", "fam_{x}.y"]
    drawn = ["".join(_rng.choices(_ALPHABET, k=_rng.randint(1, 60))) for _ in range(300)]
    return fixed + drawn + [new_secret(36) for _ in range(100)]


def _tokens() -> list[str]:
    families = ["fam_x", "fam_" + "a" * 64, "fam_" + "a" * 65, "fam_", "fam-x", "x", ""]
    families += [keyspace.code_family(new_secret(36)) for _ in range(20)]
    secrets = ["", "s", new_secret(32), "a.b", "{x}"]
    marked = [f + "." + s for f in families for s in secrets]
    return marked + _texts()


@pytest.mark.parametrize("tagged", [True, False])
def test_code_keys_are_keyspaces_names(tagged: bool) -> None:
    for code in _texts():
        family_id = keyspace.code_family(code)
        assert key_pairs.code_keys(code, family_id, tagged=tagged) == (
            keyspace.code(code, tagged=tagged),
            keyspace.spent_code(code, tagged=tagged),
        )


@pytest.mark.parametrize("tagged", [True, False])
def test_code_key_is_keyspaces_name_with_or_without_the_family(tagged: bool) -> None:
    for code in _texts():
        expected = keyspace.code(code, tagged=tagged)
        assert key_pairs.code_key(code, keyspace.code_family(code), tagged=tagged) == expected
        assert key_pairs.code_key(code, None, tagged=tagged) == expected


def test_refresh_keys_are_keyspaces_names() -> None:
    for token in _tokens():
        assert key_pairs.refresh_keys(token) == (
            keyspace.refresh_token(token),
            keyspace.refresh_used(token),
        )
