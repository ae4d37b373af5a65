"""Assemble and run ingest from settings (used by `shaobing up` and `shaobing ingest`)."""

from __future__ import annotations

import asyncio

from hub.logs import get_logger
from hub.secret import hmac_key
from hub.settings import Settings
from hub.signals import SignalBus
from ingest.consumer import ConsumerConfig, MqttConsumer, ReceiverGone
from ingest.pipeline import Pipeline
from ingest.registry_view import RegistryView

log = get_logger(__name__)


def build_consumer(settings: Settings, bus: SignalBus) -> MqttConsumer:
    """A consumer for the configured broker and database; settings must have both URLs."""
    assert settings.database_url and settings.mqtt, "resolve the services first"
    pipeline = Pipeline(registry=RegistryView(), secret=hmac_key(settings), bus=bus)
    config = ConsumerConfig(
        mqtt=settings.mqtt,
        database_url=settings.database_url,
        client_id=settings.ingest_client_id,
        shared=settings.ingest_shared,
        mqtt_v5=settings.mqtt_protocol == "5",
    )
    return MqttConsumer(config, pipeline)


async def run_ingest(settings: Settings, bus: SignalBus) -> None:
    """Run ingest until cancelled, starting a new MQTT receiver if one dies."""
    while True:
        try:
            await build_consumer(settings, bus).run()
        except ReceiverGone as exc:
            log.error("restarting ingest", reason=str(exc))
            await asyncio.sleep(1)
