"""How strong a configured secret looks: an entropy estimate for text and the tells of values
a person made up. Measures only; production.py decides what to refuse."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from itertools import pairwise

# 32 bytes: what `openssl rand -hex 32` and `oidc-link keys generate-kek` give.
REQUIRED_BITS = 256
# A pattern this long would almost never occur in a generated value (a repeat of 8 hex
# characters: about 1 in 10^6 over a 64-character salt; of 8 random bytes: far rarer).
PATTERN_LENGTH = 8

_HEX_ALPHABETS = (set(string.digits), set("0123456789abcdef"), set("0123456789ABCDEF"))
# Character classes and their sizes; anything else counts as punctuation.
_CLASSES = ((set(string.ascii_lowercase), 26), (set(string.ascii_uppercase), 26),
            (set(string.digits), 10))  # fmt: skip
_PUNCTUATION = 33  # printable ASCII that is no letter or digit, space included


def estimated_bits(text: str) -> float:
    """Length x log2(alphabet), the alphabet being the classes of characters the text uses.

    Hex counts 4 bits a character, base64url about 6: so 64 hex or 43 base64url characters
    reach 256. It assumes every character was drawn at random; made-up text scores higher
    than it deserves, which the pattern tells below partly make up for.
    """
    used = set(text)
    if not used:
        return 0.0
    hex_alphabet = next((a for a in _HEX_ALPHABETS if used <= a), None)
    if hex_alphabet is not None:
        alphabet = len(hex_alphabet)
    else:
        alphabet = sum(size for members, size in _CLASSES if used & members)
        alphabet += _PUNCTUATION if used - set().union(*(m for m, _ in _CLASSES)) else 0
    return len(text) * math.log2(alphabet)


def text_weakness(text: str) -> str | None:
    """Why ``text`` is not a generated 32-byte secret, or None when it may be one."""
    bits = estimated_bits(text)
    if bits < REQUIRED_BITS:
        return f"holds about {int(bits)} bits of entropy, under {REQUIRED_BITS}"
    return pattern_weakness([ord(c) for c in text], fewest_distinct=8, unit="characters")


def key_weakness(key: bytes) -> str | None:
    """Why 32 key bytes are not random, or None when nothing gives them away."""
    if all(0x20 <= byte < 0x7F for byte in key):
        return "decodes to readable text, not random bytes"
    return pattern_weakness(list(key), fewest_distinct=16, unit="bytes")


def pattern_weakness(values: Sequence[int], *, fewest_distinct: int, unit: str) -> str | None:
    """The tells of a value typed or built by hand: few distinct symbols, a repeated run,
    a counting sequence. Random values of 32 bytes or more show none of them."""
    if len(set(values)) < fewest_distinct:
        return f"uses fewer than {fewest_distinct} different {unit}"
    seen: set[tuple[int, ...]] = set()
    for start in range(len(values) - PATTERN_LENGTH + 1):
        window = tuple(values[start : start + PATTERN_LENGTH])
        if window in seen:
            return f"repeats a run of {PATTERN_LENGTH} {unit}"
        seen.add(window)
        steps = {b - a for a, b in pairwise(window)}
        if steps in ({1}, {-1}):
            return f"counts through {PATTERN_LENGTH} {unit} in a row"
    return None
