"""How deeply JSON text nests, found without parsing it.

Python's JSON parser recurses once per level, so input nested a few thousand levels deep
exhausts the stack; text is checked here first and refused with the limit it broke.
"""

from __future__ import annotations


class TooDeep(ValueError):
    """The text nests deeper than allowed."""


def check_nesting(raw: bytes, limit: int) -> None:
    """Raise TooDeep when `raw` nests arrays and objects more than `limit` levels deep."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # cannot be deeper than the number of brackets: the common case, in C
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                raise TooDeep(f"JSON nests at most {limit} levels")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
