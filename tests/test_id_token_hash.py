"""``at_hash`` (OIDC Core §3.1.3.6) as oauth/id_token.py computes it: the same value
Authlib's create_half_hash gives for every algorithm, and none where Authlib has none."""

from __future__ import annotations

import pytest
from authlib.oidc.core.util import create_half_hash

from oidc_link.oauth.id_token import half_hash

ACCESS_TOKEN = "fam_0123456789abcdef0123456789abcdef.Zm9vYmFyYmF6cXV4cXV1eHF1dXo"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "RS384", "ES384", "PS512", "EdDSA"])
def test_at_hash_is_the_half_hash_authlib_gives_for_the_signing_algorithm(alg: str) -> None:
    expected = create_half_hash(ACCESS_TOKEN, alg)

    assert expected is not None
    assert half_hash(ACCESS_TOKEN, alg) == expected.decode()


@pytest.mark.parametrize("alg", ["none", "RS999", "ES7"])
def test_an_algorithm_without_a_matching_hash_gives_no_at_hash(alg: str) -> None:
    assert create_half_hash(ACCESS_TOKEN, alg) is None
    assert half_hash(ACCESS_TOKEN, alg) is None
