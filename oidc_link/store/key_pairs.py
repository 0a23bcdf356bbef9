"""Two keys a step names together, from one SHA-256 digest of their secret: the same names
keyspace.py spells one by one (tests/test_key_pairs.py compares them), where spelling them
one by one digested the secret once per key, and a code's family once more per key.

Builds names only; keyspace.py stays the one place the layout is decided.
"""

from __future__ import annotations

from oidc_link.ids import digest
from oidc_link.store import keyspace
from oidc_link.store.keyspace import PREFIX, family, token_family


def code_keys(code: str, family_id: str, *, tagged: bool = True) -> tuple[str, str]:
    """``keyspace.code(code)`` and ``keyspace.spent_code(code)``, given the code's family
    (``keyspace.code_family(code)``, which the redeemer has computed already to draw the
    tokens): a redemption named them with four digests, now one. A ``family_id`` that is not
    the code's names keys nothing was stored under: the code reads as unknown."""
    code_digest = digest(code)
    if not tagged:
        return PREFIX + "code:" + code_digest, PREFIX + "code_spent:" + code_digest
    in_family = ":{" + family(family_id) + "}" + code_digest
    return PREFIX + "code" + in_family, PREFIX + "code_spent" + in_family


def code_key(code: str, family_id: str | None, *, tagged: bool = True) -> str:
    """``keyspace.code(code)``, given the code's family when the caller has it (the record
    the code step stores names it): that step digested the code for its family twice."""
    if family_id is None or not tagged:
        return keyspace.code(code, tagged=tagged)
    return PREFIX + "code:{" + family(family_id) + "}" + digest(code)


def refresh_keys(token: str) -> tuple[str, str]:
    """``keyspace.refresh_token(token)`` and ``keyspace.refresh_used(token)`` with one look
    at the family the token names and one digest of it."""
    token_digest = digest(token)
    family_id = token_family(token)
    if family_id is None:  # issued before tokens named their family: the untagged names
        return PREFIX + "refresh_token:" + token_digest, PREFIX + "refresh_used:" + token_digest
    in_family = ":{" + family(family_id) + "}" + token_digest
    return PREFIX + "refresh_token" + in_family, PREFIX + "refresh_used" + in_family
