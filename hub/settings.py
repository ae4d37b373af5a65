"""Settings from `SB_*` environment variables (and an optional `.env` file)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.durations import parse_duration
from hub.times import DEFAULT_ZONE, check_zone


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
_SECOND = timedelta(seconds=1)
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps|\d+)$")


class Settings(BaseSettings):
    """Every knob of the hub. Field names map to `SB_<NAME>` variables."""

    model_config = SettingsConfigDict(
        env_prefix="SB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = Field(
        default=None,
        description="postgresql://user@host:port/db; unset: embedded PostgreSQL under SB_DATA_DIR",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://user:pass@host:port (mqtts:// for TLS); unset: an embedded broker",
    )
    mqtt_listen: str | None = Field(
        default=None,
        description="host:port the embedded broker listens on (0.0.0.0:1883 lets"
        " devices on the network in); unset: loopback, at 1883 or the port it had last time",
    )
    api_bind: str = Field(default="127.0.0.1:8000", description="where the HTTP API listens")
    gb_listen: str | None = Field(
        default=None,
        description="host:port of the GB/T 28181 SIP server (UDP and TCP), e.g. 0.0.0.0:5060;"
        " unset: off",
    )
    gb_id: str = Field(
        default="44031100002000000001",
        pattern=r"^\d{20}$",
        description="the hub's own 20-digit GB/T 28181 id (centre, industry, type 200, serial)",
    )
    gb_domain: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]{1,64}$",
        description="SIP domain and digest realm; unset: SB_GB_ID's first 10 digits",
    )
    data_dir: Path = Field(
        default=Path("./var"), description="embedded services' data and generated secrets"
    )
    secret: SecretStr | None = Field(
        default=None,
        description="HMAC key for personal data; unset: generated into SB_DATA_DIR/secret.key",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="an extra admin bearer token for every area"
    )
    yolo_model: str = Field(
        default="yolov8n.pt",
        description="detection model (.pt, OpenVINO folder, .onnx,"
        " .engine); a bare name is downloaded on first use, so offline give a path",
    )
    fire_model: str | None = Field(default=None, description="fire/smoke model; unset: off")
    pose_model: str | None = Field(default=None, description="pose model for falls; unset: off")
    vision_device: str = Field(default="cpu", description="cpu, cuda or cuda:N")
    vision_inference: Literal["ultralytics", "tensor"] = Field(
        default="ultralytics",
        description="how the detector (SB_YOLO_MODEL) runs: Ultralytics' predict, or the"
        " batched tensor path (OpenVINO folders, .pt, .yaml)",
    )
    vision_decoder: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="where camera streams decode: cuda (NVDEC), cpu, or auto (NVDEC where a"
        " CUDA device opens, else the CPU)",
    )
    vision_inference_server: bool = Field(
        default=False,
        description="one inference process holds the models (one CUDA context per GPU) and"
        " serves every vision worker's frames in shared batches",
    )
    vision_workers: int = Field(
        default=1, ge=0, le=64, description="vision worker processes `shaobing up` starts"
    )
    vision_lease_s: float = Field(
        default=15.0,
        ge=2.0,
        le=600.0,
        description="camera lease: a dead worker's cameras move within it",
    )
    log_level: LogLevel = Field(default=LogLevel.INFO, description="DEBUG, INFO, WARNING, ERROR")
    mqtt_protocol: Literal["5", "3.1.1"] = Field(default="5", description="5 or 3.1.1")
    ingest_shared: bool = Field(
        default=False,
        description="a shared subscription, so several ingest processes split the load (MQTT 5)",
    )
    # Each ingest process needs its own id: the broker keeps one durable queue per id.
    ingest_client_id: str = Field(
        default="shaobing-ingest",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="this ingest process's durable MQTT session; one per process",
    )
    onenet_token: SecretStr | None = Field(
        default=None, description="the token of OneNET's HTTP push; enables its endpoint"
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="largest JSON request body (413 above)"
    )
    max_import_bytes: int = Field(
        default=16_777_216, ge=1024, description="largest CSV import body"
    )
    max_attachment_bytes: int = Field(
        default=10_485_760, ge=1024, le=104_857_600, description="largest photo on an incident"
    )
    map_tiles: str | None = Field(
        default=None,
        description="a tile URL for the console's map (https://tiles.example/{z}/{x}/{y}.png);"
        " without one the map draws from coordinates alone",
    )
    public_reports_per_minute: int = Field(
        default=5,
        ge=1,
        le=100_000,
        description="residents' reports and photos one client may send a minute (then 429)",
    )
    public_reads_per_minute: int = Field(
        default=60,
        ge=1,
        le=100_000,
        description="receipt lookups and ratings one client may make a minute (then 429)",
    )
    auth_failure_limit: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="failed authentications a client may make in 10 s before 429s",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="addresses or networks (comma-separated, e.g. 172.30.0.10,10.0.0.0/8) of"
        " the reverse proxies in front of the API: only from them are X-Forwarded-For and"
        " X-Real-IP believed; unset: no one's, every client is its TCP peer",
    )
    # Accept and resolve deadlines per priority, `accept/resolve` (design §5's defaults).
    sla_emergency: str = Field(default="1m/30m", description="accept/resolve of emergencies")
    sla_major: str = Field(default="5m/4h", description="accept/resolve of major incidents")
    sla_routine: str = Field(default="30m/3d", description="accept/resolve of routine ones")
    # How long a summoned department has to report in (报到), per whistle (吹哨报到).
    summon_emergency: str = Field(default="15m", description="report-in time of 应急哨")
    summon_major: str = Field(default="2h", description="report-in time of 攻坚哨")
    summon_routine: str = Field(default="1d", description="report-in time of 日常哨")
    summon_rating_remind: str = Field(
        default="1d",
        description="how often the summoning level is reminded of a rating it owes (一案一评)",
    )
    public_url: str | None = Field(
        default=None,
        description="the hub's address as people reach it, for the links in"
        " notifications; unset: http://SB_API_BIND",
    )
    notify_give_up: str = Field(
        default="6h", description="how long a notification is retried before it is failed"
    )
    rules_lateness: str = Field(
        default="5m",
        description="how late a signal may arrive behind its group's newest and"
        " still be judged as if in order (0s to 1h)",
    )
    timezone: str = Field(
        default=DEFAULT_ZONE,
        description="the IANA time zone of the hub's place: a datetime given without an"
        " offset is read as wall-clock time there, and GB/T 28181 devices set their clocks"
        " by it",
    )

    @field_validator("sla_emergency", "sla_major", "sla_routine")
    @classmethod
    def _check_sla(cls, value: str) -> str:
        accept, slash, resolve = value.partition("/")
        if not slash:
            raise ValueError(f"expected accept/resolve durations such as 5m/4h, got {value!r}")
        if parse_duration(accept, low=_SECOND) > parse_duration(resolve, low=_SECOND):
            raise ValueError(f"the accept time {accept} is longer than the resolve time {resolve}")
        return value

    @field_validator("summon_emergency", "summon_major", "summon_routine", "summon_rating_remind")
    @classmethod
    def _check_summon(cls, value: str) -> str:
        parse_duration(value, low=_SECOND, high=timedelta(days=30))
        return value

    @field_validator("rules_lateness")
    @classmethod
    def _check_lateness(cls, value: str) -> str:
        parse_duration(value, high=timedelta(hours=1))
        return value

    @field_validator("notify_give_up")
    @classmethod
    def _check_give_up(cls, value: str) -> str:
        parse_duration(value, low=timedelta(minutes=1))
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        check_zone(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected http(s)://host[:port][/path], got {value!r}")
        return value.rstrip("/")

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

    @field_validator("mqtt_listen", "gb_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        match = _BIND.match(value)
        if not match or not 0 < int(match["port"]) < 65536:
            raise ValueError(f"expected host:port such as 0.0.0.0:1883, got {value!r}")
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

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _check_proxies(cls, value: object) -> object:
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        try:
            return [str(ip_network(str(item).strip(), strict=False)) for item in items]
        except ValueError as exc:
            raise ValueError(
                f"expected IP addresses or networks such as 10.0.0.0/8: {exc}"
            ) from None

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
    def links_base(self) -> str:
        return self.public_url or f"http://{self.api_bind}"

    @property
    def zone(self) -> ZoneInfo:
        return check_zone(self.timezone)

    @property
    def trusted_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(item) for item in self.trusted_proxies)

    @property
    def gb_realm(self) -> str:
        """The GB/T 28181 SIP domain and digest realm."""
        return self.gb_domain or self.gb_id[:10]

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
