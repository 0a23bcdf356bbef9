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
