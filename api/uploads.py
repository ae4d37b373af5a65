"""Files people upload as request bodies (CSV lists of devices or residents)."""

from __future__ import annotations

from fastapi import Request

from hub.errors import Invalid, UnsupportedMediaType


async def csv_text(request: Request) -> str:
    """The CSV of a request: its body (text/csv) or a multipart field `file`, as UTF-8."""
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
    try:
        return raw.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not a column
    except UnicodeDecodeError as exc:
        raise Invalid(f"CSV must be UTF-8 (byte {exc.start} is not)", field="body") from None
