"""`/healthz`, `/readyz` and `/metrics` for a process without the API (ingest, rules,
vision), served on its own port."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.db import connect
from hub.readiness import liveness, readiness
from hub.supervisor import Supervisor


def health_app(process: str, supervisor: Supervisor, database_url: str) -> Starlette:
    async def check_database() -> None:
        conn = await connect(database_url)
        async with conn:
            await conn.execute("SELECT 1")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(liveness(process))

    async def readyz(request: Request) -> JSONResponse:
        status, body = await readiness(process, [supervisor], check_database)
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]
    )
