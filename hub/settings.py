"""Settings from `SB_*` environment variables (and an optional `.env` file)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.durations import parse_duration


class SettingsError(ValueError):
    """A setting has a value the hub cannot use; the message names the variable."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


@dataclass(frozen=True)
class MqttUrl:
    """A parsed `mqtt://user:pass@host:port` (or `mqtts://`) address."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"scheme must be mqtt:// or mqtts://, got {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise ValueError("a host is required, e.g. mqtt://127.0.0.1:1883")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


_BIND = re.compile(r"^(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|\d+)$")


class Settings(BaseSettings):
    """Every knob of the hub. Field names map to `SB_<NAME>` variables."""

    model_config = SettingsConfigDict(
        env_prefix="SB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = None
    mqtt_url: str | None = None
    api_bind: str = "127.0.0.1:8000"
    data_dir: Path = Path("./var")
    secret: SecretStr | None = None
    admin_token: SecretStr | None = None
    yolo_model: str = "yolov8n.pt"
    fire_model: str | None = None
    pose_model: str | None = None
    vision_device: str = "cpu"
    vision_workers: int = Field(default=1, ge=0, le=64)  # `shaobing up` starts these; 0: none
    vision_lease_s: float = Field(default=15.0, ge=2.0, le=600.0)
    log_level: LogLevel = LogLevel.INFO
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    ingest_shared: bool = False
    # Each ingest process needs its own id: the broker keeps one durable queue per id.
    ingest_client_id: str = Field(default="shaobing-ingest", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    onenet_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_import_bytes: int = Field(default=16_777_216, ge=1024)
    # Failed authentications a client may make in 10 s before it gets 429s.
    auth_failure_limit: int = Field(default=20, ge=1, le=1_000_000)
    # Accept and resolve deadlines per priority, `accept/resolve` (DESIGN §7's defaults).
    sla_emergency: str = "1m/30m"
    sla_major: str = "5m/4h"
    sla_routine: str = "30m/3d"
    # How much older than the newest signal of its group a signal may arrive and still get
    # the answer it would have got in order (windows, `for`, confirmations).
    rules_lateness: str = "5m"

    @field_validator("sla_emergency", "sla_major", "sla_routine")
    @classmethod
    def _check_sla(cls, value: str) -> str:
        accept, slash, resolve = value.partition("/")
        if not slash:
            raise ValueError(f"expected accept/resolve durations such as 5m/4h, got {value!r}")
        if parse_duration(accept) > parse_duration(resolve):
            raise ValueError(f"the accept time {accept} is longer than the resolve time {resolve}")
        return value

    @field_validator("rules_lateness")
    @classmethod
    def _check_lateness(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected postgresql://user@host:port/database")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        MqttUrl.parse(value)
        return value

    @field_validator("api_bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        match = _BIND.match(value)
        if not match or not 0 < int(match["port"]) < 65536:
            raise ValueError(f"expected host:port such as 127.0.0.1:8000, got {value!r}")
        return value

    @field_validator("vision_device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"expected cpu, cuda or cuda:N, got {value!r}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def api_host(self) -> str:
        return self.api_bind.rsplit(":", 1)[0].strip("[]")

    @property
    def api_port(self) -> int:
        return int(self.api_bind.rsplit(":", 1)[1])

    @property
    def mqtt(self) -> MqttUrl | None:
        return MqttUrl.parse(self.mqtt_url) if self.mqtt_url else None


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "SB_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
