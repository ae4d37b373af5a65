"""/healthz (liveness) and /readyz (readiness: database and every component)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import DbPool
from api.openapi import refusals
from api.permissions import public_route
from hub.errors import Unavailable
from hub.readiness import liveness, readiness
from vision.status import VisionState, vision_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
@public_route("liveness, for the orchestrator: no data")
async def healthz() -> JSONResponse:
    """200 while the process answers."""
    return JSONResponse(liveness("api"))


@router.get("/readyz", responses=refusals((Unavailable, "a part is down; the body says which")))
@public_route("readiness, for the orchestrator: which parts are up, no data")
async def readyz(request: Request, pool: DbPool) -> JSONResponse:
    """200 when the database answers and every component of this process is up, else 503.
    `vision` says whether the hub's vision workers analyse, and why not (it does not make
    the API unready: the API serves without them)."""

    lease = timedelta(seconds=request.app.state.settings.vision_lease_s)
    vision: list[VisionState] = []

    # The vision state is read on the connection that proves the database answers: a database
    # lost between two queries makes /readyz a 503 that says so, never a 500.
    async def check_database() -> None:
        async with pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
            vision.append(await vision_state(conn, lease))

    status, body = await readiness("api", request.app.state.supervisors, check_database)
    if body["database"] == "ok" and vision:
        body["vision"] = vision[0].model_dump()
    return JSONResponse(body, status_code=status)
