"""CSV files people upload (devices, cameras, residents), read one way everywhere.

Spreadsheets on zh-CN Windows save "CSV" in the ANSI code page (GBK, which GB18030 extends),
"CSV UTF-8" with a byte-order mark, and "Unicode text" as UTF-16 with a byte-order mark and
tabs between the cells. All of them are taken; anything else is a 422 naming the problem.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from typing import Any

from hub.errors import Invalid

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
ENCODINGS = "UTF-8, UTF-16 with a byte-order mark, or GB18030/GBK"


def decode_csv(raw: bytes, *, field: str = "body") -> str:
    """The text of an uploaded CSV: UTF-8 (with or without a byte-order mark), UTF-16 with a
    byte-order mark (either byte order), else GB18030 (which covers GBK and GB2312)."""
    if raw.startswith(_UTF16_BOMS):
        text = _decode(raw, "utf-16", field, "UTF-16 (it starts with a UTF-16 byte-order mark)")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = _decode(raw, "gb18030", field, ENCODINGS)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise Invalid(f"CSV line {line} holds a NUL character: not a text file", field=field)
    return text


def _decode(raw: bytes, encoding: str, field: str, expected: str) -> str:
    try:
        return raw.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise Invalid(f"CSV must be {expected} (byte {exc.start} is not)", field=field) from None


def csv_reader(text: str) -> csv.DictReader[str]:
    """A reader of `text` whose header names are stripped of spaces; cells are separated by
    commas, or by tabs where the header line has tabs and no comma (a spreadsheet's
    "Unicode text")."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        names = reader.fieldnames
    except csv.Error as exc:
        raise Invalid(f"CSV line 1: {exc}", field="header") from None
    if names is not None:
        reader.fieldnames = [name.strip() for name in names]
    return reader


def records(reader: csv.DictReader[str], *, field: str = "body") -> Iterator[dict[str | None, Any]]:
    """The reader's rows; a malformed line (an unclosed quote, an oversized cell) is a 422
    naming its line. Cells past the header's columns are under the key None, as a list."""
    try:
        yield from reader
    except csv.Error as exc:
        raise Invalid(f"CSV line {reader.line_num}: {exc}", field=field) from None
