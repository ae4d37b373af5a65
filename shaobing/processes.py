"""The processes `shaobing` starts: everything in one (`up`), or one role each, for scale-out.

Each process runs its components under a supervisor until SIGTERM or SIGINT, then stops them
and, for `up`, its embedded services, in that order.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any

from api.tokens import Role, TokenIn, has_admin_token, issue_token
from hub.db import connect
from hub.embedded.broker import WILDCARDS
from hub.embedded.ports import port_is_free
from hub.errors import AddressInUse
from hub.gc_tuning import tune_garbage_collector
from hub.logs import get_logger
from hub.settings import Settings
from hub.supervisor import Probe, Supervisor
from rules import partitions
from shaobing.components import (
    add_api,
    add_gb28181,
    add_health_http,
    add_incident_timers,
    add_ingest,
    add_notify,
    add_rules,
)
from shaobing.runtime import Runtime, database, follow_registry_for_broker, services
from simulator.fleet import SimConfig, Simulator, register
from vision.processes import WorkerPool, supervise, vision_available
from vision.status import missing_models

log = get_logger(__name__)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run a process's main coroutine; SIGTERM and SIGINT stop it cleanly."""

    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await main
        except asyncio.CancelledError:
            log.info("stopping")

    asyncio.run(runner())


async def run_up(settings: Settings, *, simulate: SimConfig | None = None) -> None:
    """Everything in one process group, on embedded services unless configured."""
    _check_api_bind(settings)
    async with services(settings) as runtime:
        settings = runtime.settings
        supervisor = Supervisor("up")
        add_api(supervisor, settings)
        add_ingest(supervisor, settings)
        add_rules(supervisor, settings)
        add_incident_timers(supervisor, settings)
        add_notify(supervisor, settings)
        add_gb28181(supervisor, settings)
        if runtime.broker:

            async def broker_files(probe: Probe) -> None:
                await follow_registry_for_broker(runtime, probe)

            supervisor.add("broker-files", broker_files)
        _add_vision(supervisor, settings, settings.vision_workers, required=False)
        simulator = await _start_simulator(runtime, simulate) if simulate else None
        announce = asyncio.create_task(_banner_once_listening(runtime, supervisor, simulate))
        tune_garbage_collector()
        try:
            await supervisor.run()
        finally:
            announce.cancel()
            if simulator:
                simulator.stop()


async def run_api(settings: Settings) -> None:
    """The HTTP API alone. It migrates before it listens, like every process that starts:
    one started alone on a fresh database answers from its first request."""
    _check_api_bind(settings)
    async with database(settings) as runtime:
        supervisor = Supervisor("api")
        add_api(supervisor, runtime.settings)
        tune_garbage_collector()
        await supervisor.run()


async def run_ingest(settings: Settings, *, host: str, port: int) -> None:
    """MQTT ingest and device health."""
    async with database(settings) as runtime:  # migrates, like every process that starts
        supervisor = Supervisor("ingest")
        add_ingest(supervisor, runtime.settings)
        add_health_http(supervisor, runtime.settings, host, port)
        tune_garbage_collector()
        await supervisor.run()


async def run_gb28181(settings: Settings, *, host: str, port: int) -> None:
    """The GB/T 28181 SIP server: registrations, keepalives, catalogs, alarms, commands."""
    async with database(settings) as runtime:
        supervisor = Supervisor("gb28181")
        add_gb28181(supervisor, runtime.settings)
        add_health_http(supervisor, runtime.settings, host, port)
        tune_garbage_collector()
        await supervisor.run()


async def run_rules(settings: Settings, *, area_prefix: str, host: str, port: int) -> None:
    """The rules engine of one area-prefix partition, and the incidents' timers of the same
    areas (so that partitions split the timers as they split the rules)."""
    async with database(settings) as runtime:
        await _check_partition(runtime, area_prefix)
        supervisor = Supervisor("rules")
        add_rules(supervisor, runtime.settings, area_prefix)
        add_incident_timers(supervisor, runtime.settings, area_prefix)
        add_health_http(supervisor, runtime.settings, host, port)
        tune_garbage_collector()
        await supervisor.run()


async def run_notify(settings: Settings, *, host: str, port: int) -> None:
    """Notifications: fan-out, repeats and delivery."""
    async with database(settings) as runtime:
        supervisor = Supervisor("notify")
        add_notify(supervisor, runtime.settings)
        add_health_http(supervisor, runtime.settings, host, port)
        tune_garbage_collector()
        await supervisor.run()


async def run_vision(settings: Settings, *, workers: int, host: str, port: int) -> None:
    supervisor = Supervisor("vision")
    _add_vision(supervisor, settings, workers, metrics_port=port + 1)
    add_health_http(supervisor, settings, host, port)
    await supervisor.run()


def _add_vision(
    supervisor: Supervisor,
    settings: Settings,
    workers: int,
    *,
    metrics_port: int | None = None,
    required: bool = True,
) -> None:
    """Vision worker processes; where none can run (no workers asked for, the vision extra
    not installed) a component that says vision is off, and why."""
    if off := _vision_unavailable(workers):
        log.warning("vision workers not started", reason=off)

        async def vision_off(probe: Probe) -> None:
            probe.down(f"vision is off: {off}")
            await asyncio.Event().wait()

        supervisor.add("vision", vision_off, required=required)
        return
    pool = WorkerPool(settings, workers, metrics_port)

    async def vision(probe: Probe) -> None:
        await supervise(pool, probe)

    supervisor.add("vision", vision, required=required)


def _vision_unavailable(workers: int) -> str | None:
    if workers == 0:
        return "SB_VISION_WORKERS is 0"
    return vision_available()


def _vision_line(settings: Settings) -> str:
    off = _vision_unavailable(settings.vision_workers) or missing_models(settings)
    if off:
        return f"  vision   OFF: {off}; cameras are not analysed (nor called offline)"
    return (
        f"  vision   {settings.vision_workers} worker(s); models load when a camera needs"
        " them (/readyz says if they cannot)"
    )


def _check_api_bind(settings: Settings) -> None:
    """Refuse at start, before anything is created (the first admin token above all), an API
    address that is taken: uvicorn would otherwise fail later with a traceback."""
    if not port_is_free(settings.api_host, settings.api_port):
        raise AddressInUse(
            f"SB_API_BIND {settings.api_bind} is in use (another hub?): stop that, or set"
            " SB_API_BIND to a free host:port"
        )


async def _check_partition(runtime: Runtime, area_prefix: str) -> None:
    """Refuse at start, with one clear line, a prefix that overlaps a live partition."""
    conn = await connect(runtime.database_url)
    async with conn:
        key = await partitions.claim(conn, area_prefix, "start-up check")
        await partitions.release(conn, area_prefix, key)


async def _start_simulator(runtime: Runtime, cfg: SimConfig) -> Simulator:
    conn = await connect(runtime.database_url)
    async with conn:
        await register(conn, cfg)
    assert runtime.settings.mqtt is not None
    simulator = Simulator(runtime.settings.mqtt, cfg, mqtt_v5=runtime.settings.mqtt_protocol == "5")
    threading.Thread(target=simulator.run, name="simulator", daemon=True).start()
    return simulator


async def _banner_once_listening(
    runtime: Runtime, supervisor: Supervisor, sim: SimConfig | None
) -> None:
    """Once the API is listening: on first start an admin token, and the banner. (A start
    that fails, on a busy port say, creates no token, so the next start still shows one.)"""
    await supervisor.probes["api"].wait_ready()
    first_token = await _first_admin_token(runtime)
    _print_banner(runtime, first_token, sim)


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
        f"  console  {base}/   (log in with a token)",
        f"  API      {base}/api/v1   (OpenAPI docs: {base}/docs)",
        f"  health   {base}/healthz  {base}/readyz   metrics: {base}/metrics",
        _vision_line(settings),
    ]
    if runtime.postgres:
        lines.append(f"  database embedded PostgreSQL, {runtime.postgres.url}")
    if broker := runtime.broker:
        where = (
            "all interfaces: devices use this machine's address"
            if broker.host in WILDCARDS
            else "this machine only (SB_MQTT_LISTEN=0.0.0.0:1883 opens it)"
        )
        lines.append(
            f"  MQTT     embedded {broker.kind} on mqtt://{broker.host}:{broker.port}   ({where})"
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
    lines += ["", "  Ctrl-C stops the hub.", ""]
    print("\n".join(lines), file=sys.stderr, flush=True)
