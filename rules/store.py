"""Rules and their versions in PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from hub.errors import Conflict, NotFound
from hub.paging import Page, decode_cursor, page_of
from rules.builtin import BUILTIN_RULES
from rules.model import Rule


class StoredRule(BaseModel):
    id: str
    version: int
    enabled: bool
    builtin: bool
    document: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RuleVersion(BaseModel):
    version: int
    document: dict[str, Any]
    changed_by: str
    changed_at: datetime


RULES_CHANNEL = "sb_rules"
_SEED_LOCK = 0x5B_0003  # pg_advisory_xact_lock key: one seeder at a time
_COLUMNS = "id, version, enabled, builtin, document, created_at, updated_at"
# A caller sees rules inside its area and the wider rules that reach into it.
_VISIBLE = "(area_prefix LIKE %(scope)s || '%%' OR %(scope)s LIKE area_prefix || '%%')"


async def create_rule(
    conn: AsyncConnection[DictRow], rule: Rule, *, by: str, builtin: bool = False
) -> StoredRule:
    try:
        cur = await conn.execute(
            f"INSERT INTO rules (id, version, document, enabled, area_prefix, builtin)"
            f" VALUES (%s, 1, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (rule.id, Jsonb(rule.document()), rule.enabled, rule.area_prefix, builtin),
        )
    except errors.UniqueViolation:
        raise Conflict(f"rule {rule.id} already exists", field="id") from None
    row = await cur.fetchone()
    assert row is not None
    await _record_version(conn, rule, 1, by)
    await _announce(conn, rule.id)
    return StoredRule.model_validate(row)


async def get_rule(conn: AsyncConnection[DictRow], rule_id: str, *, scope: str) -> StoredRule:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM rules WHERE id = %(id)s AND {_VISIBLE}",
        {"id": rule_id, "scope": scope},
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"rule {rule_id} not found")
    return StoredRule.model_validate(row)


async def list_rules(
    conn: AsyncConnection[DictRow], *, scope: str, enabled: bool | None = None
) -> list[StoredRule]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM rules WHERE {_VISIBLE}"
        " AND (%(enabled)s::boolean IS NULL OR enabled = %(enabled)s) ORDER BY id",
        {"scope": scope, "enabled": enabled},
    )
    return [StoredRule.model_validate(row) for row in await cur.fetchall()]


async def page_rules(
    conn: AsyncConnection[DictRow],
    *,
    scope: str,
    enabled: bool | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[StoredRule]:
    """The rules the caller sees, by id, a page at a time."""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM rules WHERE {_VISIBLE}"
        " AND (%(enabled)s::boolean IS NULL OR enabled = %(enabled)s) AND id > %(after)s"
        " ORDER BY id LIMIT %(limit)s",
        {"scope": scope, "enabled": enabled, "after": decode_cursor(cursor), "limit": limit + 1},
    )
    return page_of(StoredRule, await cur.fetchall(), limit)


async def replace_rule(
    conn: AsyncConnection[DictRow], rule: Rule, *, by: str, scope: str
) -> StoredRule:
    """Store a new version of an existing rule."""
    current = await get_rule(conn, rule.id, scope=scope)
    version = current.version + 1
    cur = await conn.execute(
        f"UPDATE rules SET version = %s, document = %s, enabled = %s, area_prefix = %s,"
        f" updated_at = now() WHERE id = %s RETURNING {_COLUMNS}",
        (version, Jsonb(rule.document()), rule.enabled, rule.area_prefix, rule.id),
    )
    row = await cur.fetchone()
    assert row is not None
    await _record_version(conn, rule, version, by)
    await _announce(conn, rule.id)
    return StoredRule.model_validate(row)


async def delete_rule(conn: AsyncConnection[DictRow], rule_id: str, *, scope: str) -> None:
    current = await get_rule(conn, rule_id, scope=scope)
    if current.builtin:
        raise Conflict(f"{rule_id} is built in: disable it instead of deleting it")
    await conn.execute("DELETE FROM rules WHERE id = %s", (rule_id,))
    await _announce(conn, rule_id)


async def versions(
    conn: AsyncConnection[DictRow], rule_id: str, *, scope: str
) -> list[RuleVersion]:
    await get_rule(conn, rule_id, scope=scope)
    cur = await conn.execute(
        "SELECT version, document, changed_by, changed_at FROM rule_versions"
        " WHERE rule_id = %s ORDER BY version",
        (rule_id,),
    )
    return [RuleVersion.model_validate(row) for row in await cur.fetchall()]


async def seed_builtin_rules(conn: AsyncConnection[DictRow]) -> int:
    """Insert the built-in rules that are missing; never touches an existing (edited) one.
    Safe when several processes start at once: they take turns."""
    added = 0
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK,))
        cur = await conn.execute("SELECT id FROM rules")
        present = {row["id"] for row in await cur.fetchall()}
        for rule in BUILTIN_RULES:
            if rule.id not in present:
                await create_rule(conn, rule, by="shaobing", builtin=True)
                added += 1
    return added


async def _record_version(
    conn: AsyncConnection[DictRow], rule: Rule, version: int, by: str
) -> None:
    await conn.execute(
        "INSERT INTO rule_versions (rule_id, version, document, changed_by)"
        " VALUES (%s, %s, %s, %s)",
        (rule.id, version, Jsonb(rule.document()), by),
    )


async def _announce(conn: AsyncConnection[DictRow], rule_id: str) -> None:
    """Engines in every process reload the rules once this transaction commits."""
    await conn.execute("SELECT pg_notify(%s, %s)", (RULES_CHANNEL, rule_id))
