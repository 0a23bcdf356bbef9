"""What a form token names, read in one split (admission.named_in, the code step's) and one
position at a time (client_named_by, email_named_by, session_named_by): the same answers."""

from __future__ import annotations

import itertools

from oidc_link.interaction.admission import (
    client_named_by,
    code_form_token,
    email_named_by,
    form_token,
    named_in,
    session_named_by,
)

PARTS = ["", "c2hvcA", "c2hvcA==", "c2hvcA=", "a+b/", "a-b_", "%%%", "=", "YQ", "Y", "/w", "gA"]


def test_named_in_reads_what_the_three_readers_read_on_every_kind_of_token() -> None:
    made = form_token("shop")
    tokens: list[str | None] = [
        None,
        "",
        ".",
        "...",
        "....",
        "no-client-named",
        made,
        code_form_token(made, "jenny@example.com"),
        code_form_token(made, "jenny@example.com", "session-id"),
        code_form_token(made, "jenny@example.com", "session-id") + ".more.parts",
    ]
    for count in range(1, 5):
        tokens += [".".join(("secret", *parts)) for parts in itertools.product(PARTS, repeat=count)]
    for token in tokens:
        expected = (client_named_by(token), email_named_by(token), session_named_by(token))
        assert named_in(token) == expected, token


def _b64decode_text(named: str) -> str | None:
    """What admission._decoded gave before it called binascii itself."""
    import base64
    import binascii

    if not named:
        return None
    try:
        padded = named + "=" * (-len(named) % 4)
        text = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text or None


def test_a_name_is_decoded_as_base64_decodes_it_and_written_as_it_writes_it() -> None:
    import base64
    import random
    import string

    from oidc_link.interaction.admission import _decoded, _named

    alphabet = string.ascii_letters + string.digits + "-_+/=.é \n\x00%"
    chance = random.Random(16)  # noqa: S311 - inputs for a test, no secret
    names = ["".join(p) for n in range(4) for p in itertools.product("aA0-_+/=.é", repeat=n)]
    names += [
        "".join(chance.choice(alphabet) for _ in range(chance.randrange(12))) for _ in range(20_000)
    ]
    names += [_named(text) for text in ("shop", "jenny@example.com", "é", "\x00", "a" * 99)]
    for name in names:
        assert _decoded(name) == _b64decode_text(name), repr(name)
    for text in ["", "a", "ab", "abc", "jenny@example.com", "é€𝄞", "\x00\xff", *names[:2_000]]:
        assert _named(text) == base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
