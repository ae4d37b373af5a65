"""Text people type (titles, notes, names): one type that refuses bidirectional controls.

U+202E and its kin reorder what a reader sees (`‮gpj.exe` shows as `exe.jpg`), so a title or a
unit's name could show one thing on the console and in a notification and say another in
the database. Every model field that takes free text from a person uses `PlainText`, so that
such text is refused (422 naming the field) wherever it enters.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# Embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), the left-to-right and
# right-to-left marks (U+200E, U+200F) and the Arabic letter mark (U+061C).
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_BIDI = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def refuse_bidi(value: str) -> str:
    """The text unchanged, or ValueError naming the first bidirectional control in it."""
    found = _BIDI.search(value)
    if found is not None:
        raise ValueError(
            f"bidirectional control character U+{ord(found.group()):04X} is not accepted in text"
        )
    return value


PlainText = Annotated[str, AfterValidator(refuse_bidi)]
