"""`shaobing up` and `shaobing api`: serve the API, with embedded services when needed."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import uvicorn

from api.app import create_app
from api.tokens import Role, TokenIn, has_admin_token, issue_token
from hub.db import connect
from hub.logs import get_logger
from hub.pauses import tune_garbage_collector
from hub.runtime import Runtime, database, services
from hub.settings import Settings
from hub.signals import SignalBus
from incidents.timers import run_timers
from ingest.service import run_ingest
from ingest.simulate import SimConfig, Simulator, register
from rules.service import RulesService
from vision.processes import WorkerPool, supervise, vision_available

log = get_logger(__name__)


async def run_up(settings: Settings, *, simulate: SimConfig | None = None) -> None:
    """Start everything and serve until interrupted; embedded services stop on the way out."""
    async with services(settings) as runtime:
        first_token = await _first_admin_token(runtime)
        bus = SignalBus()
        rules = RulesService(runtime.database_url)
        await rules.start(datetime.now(UTC))
        bus.subscribe(rules.on_signals)
        engine = asyncio.create_task(_supervised("rules", rules.run()))
        ingest = asyncio.create_task(_supervised("ingest", run_ingest(runtime.settings, bus)))
        timers = asyncio.create_task(_supervised("timers", run_timers(runtime.database_url)))
        simulator = await _start_simulator(runtime, simulate) if simulate else None
        vision = _start_vision(runtime.settings)
        _print_banner(runtime, first_token, simulate)
        try:
            await _serve(runtime.settings, bus)
        finally:
            if simulator:
                simulator.stop()
            tasks = [t for t in (vision, ingest, timers, engine) if t is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def run_ingest_alone(settings: Settings) -> None:
    """`shaobing ingest`: MQTT consumer, device health, rules engine and incident timers."""
    async with database(settings):  # migrates, like every process that starts
        assert settings.database_url
        tune_garbage_collector()
        # Alone, a crash ends the process so that its supervisor restarts it.
        await asyncio.gather(run_ingest(settings, SignalBus()), run_timers(settings.database_url))


async def _supervised(name: str, work: Awaitable[None]) -> None:
    """Log a crashed component loudly instead of losing the exception in a task."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("component stopped with an error", component=name)


def _start_vision(settings: Settings) -> asyncio.Task[None] | None:
    """Vision worker processes, when the vision extra is installed and SB_VISION_WORKERS > 0."""
    if settings.vision_workers == 0:
        return None
    if missing := vision_available():
        log.warning("vision workers not started", reason=missing)
        return None
    pool = WorkerPool(settings, settings.vision_workers)
    return asyncio.create_task(_supervised("vision", supervise(pool)))


async def _start_simulator(runtime: Runtime, cfg: SimConfig) -> Simulator:
    conn = await connect(runtime.database_url)
    async with conn:
        await register(conn, cfg)
    assert runtime.settings.mqtt is not None
    simulator = Simulator(runtime.settings.mqtt, cfg, mqtt_v5=runtime.settings.mqtt_protocol == "5")
    threading.Thread(target=simulator.run, name="simulator", daemon=True).start()
    return simulator


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


async def _serve(settings: Settings, bus: SignalBus | None = None) -> None:
    config = uvicorn.Config(
        create_app(settings, bus=bus),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
    tune_garbage_collector()
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


def _print_banner(runtime: Runtime, first_token: str | None, sim: SimConfig | None) -> None:
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
    if sim:
        lines.append(
            f"  simulator {sim.smoke} smoke sensors + {sim.readers} ID readers in {sim.area},"
            f" {sim.rate:g} msgs/s"
        )
    if first_token:
        lines += [
            "",
            "  First start: an admin token was created. Keep it; it is not shown again:",
            f"    export SB_TOKEN={first_token}",
        ]
    lines.append("")
    print("\n".join(lines), file=sys.stderr, flush=True)
