"""One cookie's value read out of a Cookie header, as Werkzeug's ``parse_cookie`` reads it.

A browser sends this app one or two cookies of plain characters, ``name=value; name=value``;
``parse_cookie`` runs its pattern on each and builds a MultiDict of all of them to give one
value back. A header of that plain shape is split here instead; any other header (quoted
values, tabs or odd spacing, a bare name, characters outside printable ASCII) goes to
Werkzeug.
"""

from __future__ import annotations

import re

from werkzeug.sansio.http import parse_cookie

# Printable ASCII without space, '"' and ';' (a value: Werkzeug's unquoted token, which may
# hold '=' and '\' as they are), and without '=' too (a name: Werkzeug's key stops there).
_NAME = r"[!#-:<>-~]+"
_VALUE = r"[!#-:<-~]*"
_PLAIN_HEADER = re.compile(f"{_NAME}={_VALUE}(?:; {_NAME}={_VALUE})*")


def cookie_value(header: str, name: str) -> str | None:
    """``parse_cookie(header).get(name)``: the first cookie of that name's value, or None."""
    if _PLAIN_HEADER.fullmatch(header) is None:
        return parse_cookie(header).get(name)
    for pair in header.split("; "):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None
