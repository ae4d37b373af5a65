"""Operators' wording of each message kind, over the built-in one (`templates.DEFAULTS`)."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from notify.templates import DEFAULTS, Template, TemplateIn


async def template_for(conn: AsyncConnection[DictRow], kind: str, language: str) -> Template:
    cur = await conn.execute(
        "SELECT title, body FROM notify_templates WHERE kind = %s AND language = %s",
        (kind, language),
    )
    row = await cur.fetchone()
    if row is not None:
        return Template(
            kind=kind, language=language, title=row["title"], body=row["body"], custom=True
        )
    title, body = DEFAULTS[(kind, language)]
    return Template(kind=kind, language=language, title=title, body=body, custom=False)


async def all_templates(conn: AsyncConnection[DictRow]) -> list[Template]:
    return [await template_for(conn, kind, language) for kind, language in sorted(DEFAULTS)]


async def put_template(
    conn: AsyncConnection[DictRow], kind: str, language: str, data: TemplateIn, *, by: str
) -> Template:
    await conn.execute(
        "INSERT INTO notify_templates (kind, language, title, body, updated_by)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, language) DO UPDATE SET"
        " title = excluded.title, body = excluded.body, updated_by = excluded.updated_by,"
        " updated_at = now()",
        (kind, language, data.title, data.body, by),
    )
    return await template_for(conn, kind, language)


async def reset_template(conn: AsyncConnection[DictRow], kind: str, language: str) -> Template:
    """Back to the built-in wording."""
    await conn.execute(
        "DELETE FROM notify_templates WHERE kind = %s AND language = %s", (kind, language)
    )
    return await template_for(conn, kind, language)
