"""What every hub MQTT client takes from the broker URL: credentials, TLS, reconnect backoff."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from hub.settings import MqttUrl


def configure(client: mqtt.Client, url: MqttUrl) -> None:
    """Set `url`'s credentials and TLS on a client not yet connected; reconnects back off
    up to 30 s."""
    if url.username:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set_context(ssl.create_default_context())
    client.reconnect_delay_set(min_delay=1, max_delay=30)
