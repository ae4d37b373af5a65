"""Settings: environment variables in, one clear line per bad value out."""

from __future__ import annotations

import pytest

from hub.settings import MqttUrl, SettingsError, load_settings


@pytest.fixture(autouse=True)
def no_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    import os

    for name in [n for n in os.environ if n.startswith("SB_")]:
        monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url is None and settings.mqtt_url is None
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert settings.vision_device == "cpu" and settings.yolo_model == "yolov8n.pt"


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SB_MQTT_URL", "mqtts://hub:p%40ss@broker.local")
    monkeypatch.setenv("SB_API_BIND", "0.0.0.0:9000")
    monkeypatch.setenv("SB_LOG_LEVEL", "debug")
    monkeypatch.setenv("SB_VISION_DEVICE", "cuda:1")
    settings = load_settings()
    assert settings.mqtt == MqttUrl("broker.local", 8883, "hub", "p@ss", tls=True)
    assert settings.api_port == 9000 and settings.log_level.value == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("SB_API_BIND", "8000", "SB_API_BIND: expected host:port"),
        ("SB_API_BIND", "127.0.0.1:99999", "SB_API_BIND"),
        ("SB_MQTT_URL", "http://x:1883", "SB_MQTT_URL: scheme must be mqtt:// or mqtts://"),
        ("SB_MQTT_URL", "mqtt://host:notaport", "SB_MQTT_URL: bad port"),
        ("SB_DATABASE_URL", "mysql://x", "SB_DATABASE_URL: expected postgresql://"),
        ("SB_VISION_DEVICE", "gpu", "SB_VISION_DEVICE: expected cpu, cuda or cuda:N"),
        ("SB_LOG_LEVEL", "loud", "SB_LOG_LEVEL"),
        ("SB_MAX_BODY_BYTES", "12", "SB_MAX_BODY_BYTES"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="invalid settings") as caught:
        load_settings()
    assert needle in str(caught.value)
