"""/healthz"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import DbPool

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(pool: DbPool) -> JSONResponse:
    """200 when the database answers, 503 otherwise."""
    try:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure means "not healthy", which is the answer
        return JSONResponse(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok"})
