"""/healthz (liveness) and /readyz (readiness: database and every component)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import DbPool
from hub.readiness import liveness, readiness

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """200 while the process answers."""
    return JSONResponse(liveness("api"))


@router.get("/readyz", responses={503: {"description": "a part is down; the body says which"}})
async def readyz(request: Request, pool: DbPool) -> JSONResponse:
    """200 when the database answers and every component of this process is up, else 503."""

    async def check_database() -> None:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")

    status, body = await readiness("api", request.app.state.supervisors, check_database)
    return JSONResponse(body, status_code=status)
