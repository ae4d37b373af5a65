"""Bearer tokens: issued with a role and an area prefix, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from devices.area_codes import check_area_prefix
from hub.errors import NotFound

_PREFIX = "sb_"


class Role(StrEnum):
    ADMIN = "admin"
    INTEGRATOR = "integrator"
    OPERATOR = "operator"
    DISPATCHER = "dispatcher"
    VIEWER = "viewer"


AreaPrefix = Annotated[str, AfterValidator(check_area_prefix)]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Role
    area_prefix: AreaPrefix = ""


class TokenInfo(BaseModel):
    id: int
    name: str
    role: Role
    area_prefix: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedToken(TokenInfo):
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    conn: AsyncConnection[DictRow], data: TokenIn, *, created_by: int | None = None
) -> IssuedToken:
    """Create a token; its clear text is returned this once and never stored."""
    token = _PREFIX + secrets.token_urlsafe(32)
    cur = await conn.execute(
        "INSERT INTO api_tokens (name, role, area_prefix, token_hash, created_by)"
        " VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id, name, role, area_prefix, created_at, revoked_at",
        (data.name, data.role.value, data.area_prefix, hash_token(token), created_by),
    )
    row = await cur.fetchone()
    assert row is not None
    return IssuedToken(**row, token=token)


async def find_token(conn: AsyncConnection[DictRow], token: str) -> TokenInfo | None:
    """The live token with this clear text, or None."""
    if not token.startswith(_PREFIX):
        return None
    cur = await conn.execute(
        "SELECT id, name, role, area_prefix, created_at, revoked_at FROM api_tokens"
        " WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(token),),
    )
    row = await cur.fetchone()
    return TokenInfo.model_validate(row) if row else None


async def list_tokens(conn: AsyncConnection[DictRow], *, scope: str) -> list[TokenInfo]:
    cur = await conn.execute(
        "SELECT id, name, role, area_prefix, created_at, revoked_at FROM api_tokens"
        " WHERE area_prefix LIKE %s ORDER BY id",
        (scope + "%",),
    )
    return [TokenInfo.model_validate(r) for r in await cur.fetchall()]


async def revoke_token(conn: AsyncConnection[DictRow], token_id: int, *, scope: str) -> None:
    cur = await conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = %s AND area_prefix LIKE %s",
        (token_id, scope + "%"),
    )
    if cur.rowcount == 0:
        raise NotFound(f"token {token_id} not found")


async def has_admin_token(conn: AsyncConnection[DictRow]) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1"
    )
    return await cur.fetchone() is not None
