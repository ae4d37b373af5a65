"""`shaobing up` and `shaobing api`: serve the API, with embedded services when needed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.app import create_app
from api.tokens import Role, TokenIn, has_admin_token, issue_token
from hub.db import connect
from hub.logs import get_logger
from hub.runtime import Runtime, services
from hub.settings import Settings

log = get_logger(__name__)


async def run_up(settings: Settings) -> None:
    """Start everything and serve until interrupted; embedded services stop on the way out."""
    async with services(settings) as runtime:
        first_token = await _first_admin_token(runtime)
        _print_banner(runtime, first_token)
        await _serve(runtime.settings)


async def run_api(settings: Settings) -> None:
    await _serve(settings)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after a graceful stop, which would kill the process
    before `up` stops its embedded PostgreSQL and broker; forget the signal instead."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


async def _serve(settings: Settings) -> None:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
    await _Server(config).serve()


async def _first_admin_token(runtime: Runtime) -> str | None:
    """On first start (no admin token yet) issue one, so the user can log in."""
    conn = await connect(runtime.database_url)
    async with conn:
        if await has_admin_token(conn):
            return None
        issued = await issue_token(conn, TokenIn(name="first admin", role=Role.ADMIN))
        await conn.commit()
        return issued.token


def _print_banner(runtime: Runtime, first_token: str | None) -> None:
    settings = runtime.settings
    base = f"http://{settings.api_bind}"
    lines = [
        "",
        "Shaobing (哨兵) is up",
        f"  API      {base}/api/v1   (OpenAPI docs: {base}/docs)",
        f"  health   {base}/healthz   metrics: {base}/metrics",
    ]
    if runtime.postgres:
        lines.append(f"  database embedded PostgreSQL, {runtime.postgres.url}")
    if runtime.broker:
        lines.append(
            f"  MQTT     embedded {runtime.broker.kind} on mqtt://127.0.0.1:{runtime.broker.port}"
        )
    if first_token:
        lines += [
            "",
            "  First start: an admin token was created. Keep it; it is not shown again:",
            f"    export SB_TOKEN={first_token}",
        ]
    lines.append("")
    print("\n".join(lines), file=sys.stderr, flush=True)
