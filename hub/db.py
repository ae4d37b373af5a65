"""The async PostgreSQL pool every package's queries run on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff
from pydantic import BaseModel

from hub.errors import NotFound

Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
Params = Sequence[Any] | Mapping[str, Any]
M = TypeVar("M", bound=BaseModel)


class _PromptRetry(AttemptWithBackoff):
    """Reconnection attempts at most `MAX_DELAY_S` apart (the pool's own double up to minutes
    apart, so a database back after an outage would wait that long for its first connection)."""

    MAX_DELAY_S = 2.0

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY_S)


class _CheckedPool(AsyncConnectionPool[AsyncConnection[DictRow]]):
    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        await super()._add_connection(
            attempt or _PromptRetry(timeout=self.reconnect_timeout), growing
        )


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """Open a pool whose connections return rows as dicts; waits until one connection works.

    Each connection is checked as it is handed out, and a dead one (the database restarted
    since it was opened) is replaced there and then: once the database is back, no request
    fails for a connection that went stale meanwhile."""
    pool: Pool = _CheckedPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": False},
        connection_class=AsyncConnection[DictRow],
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="shaobing",
    )
    await pool.open(wait=True, timeout=30)
    return pool


async def connect(url: str) -> AsyncConnection[DictRow]:
    """One connection outside the pool (migrations, CLI commands)."""
    return await AsyncConnection.connect(url, row_factory=dict_row)


def set_clause(fields: dict[str, object]) -> sql.Composed:
    """`a = %(a)s, b = %(b)s` for an UPDATE, with the names quoted as identifiers."""
    return sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in fields
    )


async def fetch_model(
    conn: AsyncConnection[DictRow],
    model: type[M],
    query: str | sql.Composed,
    params: Params,
    *,
    missing: str,
) -> M:
    """Run a query expected to return one row, as `model`; NotFound(`missing`) otherwise."""
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        raise NotFound(missing)
    return model.model_validate(row)
