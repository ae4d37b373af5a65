"""The FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from api.auth_limit import FailedAuthentications
from api.clients import ClientAddressMiddleware
from api.console import install_console
from api.errors import install_error_handlers
from api.limits import BodyLimitMiddleware, InputGuardMiddleware, JsonBodyMiddleware
from api.metrics import MetricsMiddleware, MetricSource
from api.metrics import router as metrics_router
from api.openapi import install_openapi
from api.routers import (
    areas,
    boundaries,
    cameras,
    channels,
    commands,
    dead_letters,
    devices,
    evidence,
    health,
    incidents,
    names,
    notifications,
    public,
    push,
    registers,
    routes,
    rules,
    session,
    signals,
    silences,
    stats,
    tokens,
    unit_links,
    units,
    vision,
    watchlists,
)
from api.stream import Broadcaster
from api.stream import router as stream_router
from hub.db import open_pool
from hub.settings import Settings
from hub.supervisor import Supervisor
from hub.times import use_zone
from notify.service import transports_for
from notify.transports.http import client as http_client

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings,
    *,
    process: Supervisor | None = None,
    routers: Sequence[APIRouter] = (),
    metric_sources: Sequence[MetricSource] = (),
) -> FastAPI:
    """Build the app; its lifespan opens the database pool from `settings.database_url`.

    `process`: the supervisor of the process the app runs in, whose components `/readyz`
    reports beside the app's own (the live stream). `routers` and `metric_sources`: what the
    composition root adds from packages that the API does not import (GB/T 28181 uplinks)."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (shaobing up resolves it)")
    database_url = settings.database_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(database_url)
        app.state.http = http_client()
        app.state.transports = transports_for(app.state.http)
        app.state.broadcaster = Broadcaster(database_url, app.state.pool)
        components = Supervisor("api")
        components.add("live-stream", app.state.broadcaster.run)
        app.state.supervisors = [s for s in (process, components) if s is not None]
        running = asyncio.create_task(components.run())
        try:
            yield
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await app.state.pool.close()
            await app.state.http.aclose()

    app = FastAPI(
        title="Shaobing (哨兵)",
        summary="IoT and video alert hub for smart-community safety",
        version="0.1.0",
        lifespan=lifespan,
        license_info={"name": "AGPL-3.0", "identifier": "AGPL-3.0-only"},
    )
    app.state.settings = settings
    use_zone(settings.timezone)  # naive datetimes in requests are read in the hub's zone
    app.state.failed_auth = FailedAuthentications(limit=settings.auth_failure_limit)
    app.state.public_budgets = {}
    app.state.metric_sources = list(metric_sources)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(JsonBodyMiddleware, routes=lambda: app.routes)
    app.add_middleware(InputGuardMiddleware)  # inside the body limit: bodies are bounded
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        large_limit=max(settings.max_import_bytes, settings.max_attachment_bytes + 65_536),
        large_paths=("/import", "/attachments"),  # CSV imports, photos
    )
    app.add_middleware(MetricsMiddleware)
    # Outermost: every layer and route sees the real client (SB_TRUSTED_PROXIES).
    app.add_middleware(ClientAddressMiddleware, trusted=settings.trusted_networks)
    modules = (
        areas,
        boundaries,
        devices,
        cameras,
        units,
        tokens,
        watchlists,
        push,
        rules,
        silences,
        signals,
        incidents,
        stats,
        evidence,
        dead_letters,
        channels,
        routes,
        notifications,
        public,
        commands,
        registers,
        session,
        names,
        vision,
    )
    for router in (*(module.router for module in modules), *routers):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(unit_links.api_router, prefix=API_PREFIX)
    app.include_router(unit_links.page_router)
    app.include_router(public.page_router)
    app.include_router(stream_router)
    app.include_router(health.router)
    app.include_router(metrics_router)
    install_console(app)
    return app
