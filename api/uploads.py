"""Files people upload as request bodies (CSV lists of devices or residents)."""

from __future__ import annotations

from fastapi import Request

from hub.csv_files import decode_csv
from hub.errors import Invalid, UnsupportedMediaType


async def csv_text(request: Request) -> str:
    """The CSV of a request: its body (text/csv) or a multipart field `file`, as text (see
    `hub.csv_files.decode_csv` for the encodings taken)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Invalid("multipart body needs a file field named 'file'", field="file")
        raw = await upload.read()
    elif content_type.startswith(("text/csv", "text/plain", "application/csv")) or not content_type:
        raw = await request.body()
    else:
        raise UnsupportedMediaType(
            f"send CSV as text/csv or multipart/form-data, not {content_type}"
        )
    return decode_csv(raw)
