"""The components of each role, added to a process's supervisor.

`shaobing up` adds them all to one process; `shaobing api`, `ingest`, `rules` (with the
incidents' timers of its partition) and `vision` each add their own. A component is started
afresh (new connections, new state) after a failure.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from gb28181.cascade import api as uplinks_api
from gb28181.server import config_from, run_gb28181
from hub.durations import parse_duration
from hub.health_http import health_app
from hub.http_server import run_server
from hub.secret import hmac_key
from hub.settings import Settings
from hub.supervisor import Probe, Supervisor
from incidents.sla import Sla
from incidents.timers import TimersConfig, run_timers
from ingest.command_sender import CommandSenderConfig, run_command_sender
from ingest.consumer import ConsumerConfig, MqttConsumer
from ingest.downlink import Downlink
from ingest.health import run_health
from ingest.pipeline import Pipeline
from ingest.registry_view import RegistryView
from notify.sender import SenderConfig
from notify.service import NotifyConfig, run_notifier
from rules.consumer import RulesConfig, RulesConsumer


def _database_url(settings: Settings) -> str:
    assert settings.database_url, "resolve the services first"
    return settings.database_url


def hub_app(settings: Settings, *, process: Supervisor | None = None) -> FastAPI:
    """The API as the hub serves it: the app with the routes of the packages that the API does
    not import (GB/T 28181 uplinks). `shaobing openapi` writes its document."""
    return create_app(
        settings,
        process=process,
        routers=[uplinks_api.router],
        metric_sources=[uplinks_api.metrics_text],
    )


def add_api(supervisor: Supervisor, settings: Settings) -> None:
    config = uvicorn.Config(
        hub_app(settings, process=supervisor),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        # The app decides whose forwarded address to believe (SB_TRUSTED_PROXIES, api/clients);
        # uvicorn's own would believe any X-Forwarded-For sent from 127.0.0.1.
        proxy_headers=False,
    )

    async def api(probe: Probe) -> None:
        await run_server(config, probe)

    supervisor.add("api", api)


def add_ingest(supervisor: Supervisor, settings: Settings) -> None:
    """MQTT ingest, the registry view it checks messages against, device health, and the
    sender of commands to devices."""
    url = _database_url(settings)
    assert settings.mqtt, "resolve the services first"
    registry = RegistryView()
    secret = hmac_key(settings)
    config = ConsumerConfig(
        mqtt=settings.mqtt,
        database_url=url,
        client_id=settings.ingest_client_id,
        shared=settings.ingest_shared,
        mqtt_v5=settings.mqtt_protocol == "5",
    )

    async def ingest(probe: Probe) -> None:
        verdicts = Downlink(config.mqtt, mqtt_v5=config.mqtt_v5)  # ID-card verdicts
        try:
            await MqttConsumer(config, Pipeline(registry, secret, verdicts)).run(probe)
        finally:
            verdicts.close()

    async def follow(probe: Probe) -> None:
        await registry.follow(url, probe)

    async def health(probe: Probe) -> None:
        await run_health(url, registry, probe)

    commands = CommandSenderConfig(url, settings.mqtt, mqtt_v5=config.mqtt_v5)

    async def send_commands(probe: Probe) -> None:
        await run_command_sender(commands, probe)

    supervisor.add("ingest", ingest)
    supervisor.add("registry", follow)
    supervisor.add("device-health", health)
    supervisor.add("commands", send_commands)


def rules_config(settings: Settings, area_prefix: str) -> RulesConfig:
    return RulesConfig(
        database_url=_database_url(settings),
        sla=Sla.from_settings(settings),
        area_prefix=area_prefix,
        lateness=parse_duration(settings.rules_lateness),
    )


def add_rules(supervisor: Supervisor, settings: Settings, area_prefix: str = "") -> None:
    """The rules engine of one area-prefix partition."""
    config = rules_config(settings, area_prefix)

    async def rules(probe: Probe) -> None:
        await RulesConsumer(config).run(probe)

    supervisor.add("rules", rules)


def add_incident_timers(supervisor: Supervisor, settings: Settings, area_prefix: str = "") -> None:
    """The incidents' timers (SLA escalation, overdue report-ins, owed ratings) of the
    incidents under `area_prefix`, whatever opened them."""
    config = TimersConfig.from_settings(settings, area_prefix=area_prefix)

    async def timers(probe: Probe) -> None:
        await run_timers(config, probe)

    supervisor.add("timers", timers)


def add_notify(supervisor: Supervisor, settings: Settings) -> None:
    """Notifications: fan-out, repeats and delivery (several may run)."""
    config = NotifyConfig(
        database_url=_database_url(settings),
        sender=SenderConfig(
            public_url=settings.links_base,
            secret=hmac_key(settings),
            give_up=parse_duration(settings.notify_give_up),
        ),
    )

    async def notify(probe: Probe) -> None:
        await run_notifier(config, probe)

    supervisor.add("notify", notify)


def add_health_http(supervisor: Supervisor, settings: Settings, host: str, port: int) -> None:
    """/healthz, /readyz and /metrics of a process without the API."""
    app = health_app(supervisor.process, supervisor, _database_url(settings))
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)

    async def http(probe: Probe) -> None:
        await run_server(config, probe)

    supervisor.add("http", http)


def add_gb28181(supervisor: Supervisor, settings: Settings) -> None:
    """The GB/T 28181 SIP server (SB_GB_LISTEN), when it is set."""
    if not settings.gb_listen:
        return
    config = config_from(settings, hmac_key(settings), _database_url(settings))

    async def gb28181(probe: Probe) -> None:
        await run_gb28181(config, probe)

    supervisor.add("gb28181", gb28181)
