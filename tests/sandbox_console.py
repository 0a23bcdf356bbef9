"""Reading the sandbox's console: the codes it announces to the operator."""

from __future__ import annotations

import re


def announced_code(messages: list[str]) -> str:
    """The six-digit code in the latest announcement."""
    match = re.search(r"\b(\d{6})$", messages[-1])
    assert match is not None, messages[-1]
    return match.group(1)


def wrong_code_for(code: str) -> str:
    """A well-formed code that is neither ``code`` nor one of the sandbox's magic codes."""
    return "123456" if code != "123456" else "654321"
