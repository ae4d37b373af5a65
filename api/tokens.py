"""Bearer tokens: issued with a role and an area prefix, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from devices.units import get_unit
from hub.area_codes import check_scope
from hub.errors import Invalid, NotFound
from hub.text import PlainText

_PREFIX = "sb_"
_COLUMNS = "id, name, role, area_prefix, unit_id, created_at, revoked_at, expires_at"
_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
TOKENS_CHANNEL = "sb_tokens"  # NOTIFY with a token id when it is revoked


class Role(StrEnum):
    ADMIN = "admin"
    INTEGRATOR = "integrator"
    OPERATOR = "operator"
    DISPATCHER = "dispatcher"
    VIEWER = "viewer"
    # Field staff: reports in its area, acts on what is dispatched to its unit, nothing more.
    GRID_WORKER = "grid_worker"
    # A dispatched unit's link (notify.links): one incident, a few actions; never issued here.
    UNIT_LINK = "unit_link"


ISSUABLE = [r for r in Role if r is not Role.UNIT_LINK]


def _issuable(role: Role) -> Role:
    if role is Role.UNIT_LINK:
        raise ValueError("unit links are made by dispatching a unit, not issued as tokens")
    return role


AreaScope = Annotated[
    str,
    AfterValidator(check_scope),
    Field(json_schema_extra={"pattern": r"^(\d{4}|\d{6}|\d{9}|\d{12})?$"}),
]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[PlainText, Field(min_length=1, max_length=100)]
    role: Annotated[
        Role,
        AfterValidator(_issuable),
        Field(json_schema_extra={"enum": [r.value for r in ISSUABLE]}),
    ]
    area_prefix: AreaScope = ""
    unit_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = Field(
        default=None, description="a grid worker's unit: the incidents dispatched to it"
    )
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _unit_for_field_staff(self) -> TokenIn:
        if self.unit_id is not None and self.role is not Role.GRID_WORKER:
            raise ValueError("unit_id is for grid_worker tokens")
        return self


class TokenInfo(BaseModel):
    id: int
    name: str
    role: Role
    area_prefix: str
    unit_id: str | None = None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


class IssuedToken(TokenInfo):
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    conn: AsyncConnection[DictRow], data: TokenIn, *, created_by: int | None = None
) -> IssuedToken:
    """Create a token; its clear text is returned this once and never stored. A grid
    worker's unit must be one within the token's area (422 otherwise)."""
    if data.unit_id is not None:
        try:
            await get_unit(conn, data.unit_id, scope=data.area_prefix)
        except NotFound:
            raise Invalid(
                f"no unit {data.unit_id} within {data.area_prefix or 'all areas'}", field="unit_id"
            ) from None
    token = _PREFIX + secrets.token_urlsafe(32)
    cur = await conn.execute(
        "INSERT INTO api_tokens (name, role, area_prefix, token_hash, created_by, expires_at,"
        f" unit_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (
            data.name,
            data.role.value,
            data.area_prefix,
            hash_token(token),
            created_by,
            data.expires_at,
            data.unit_id,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return IssuedToken(**row, token=token)


async def find_token(conn: AsyncConnection[DictRow], token: str) -> TokenInfo | None:
    """The live token with this clear text, or None."""
    if not token.startswith(_PREFIX):
        return None
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = %s AND {_LIVE}", (hash_token(token),)
    )
    row = await cur.fetchone()
    return TokenInfo.model_validate(row) if row else None


async def list_tokens(conn: AsyncConnection[DictRow], *, scope: str) -> list[TokenInfo]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_tokens WHERE area_prefix LIKE %s ORDER BY id", (scope + "%",)
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
    # Every API process closes the live streams opened with it.
    await conn.execute("SELECT pg_notify(%s, %s)", (TOKENS_CHANNEL, str(token_id)))


async def live_token_ids(conn: AsyncConnection[DictRow], ids: list[int]) -> set[int]:
    """Which of these tokens are neither revoked nor expired."""
    cur = await conn.execute(f"SELECT id FROM api_tokens WHERE id = ANY(%s) AND {_LIVE}", (ids,))
    return {row["id"] for row in await cur.fetchall()}


async def has_admin_token(conn: AsyncConnection[DictRow]) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1"
    )
    return await cur.fetchone() is not None
