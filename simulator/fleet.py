"""Realistic device traffic for demos, load and tests (`shaobing simulate`).

Registers simulated smoke sensors and ID-card readers in one community, then publishes for them
through the hub's MQTT account (a gateway, so thousands of devices need no connections of
their own): drifting smoke levels, draining batteries, ID reads with valid check digits, and on
request alarms and malformed messages. Its devices answer the hub's commands: each is carried
out (a silenced sensor raises no alarm for the silence's duration) and answered `cmd_result`;
its readers print the ID-card verdicts they get back.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from devices.areas import create_area, existing_areas
from devices.models import AreaIn, DeviceIn, DeviceType
from devices.registry import create_devices_bulk, device_refs, existing_ids
from hub.area_codes import parent_code
from hub.durations import parse_duration
from hub.errors import Conflict
from hub.mqtt import Unacknowledged, configure, json_payload
from hub.settings import MqttUrl
from idcard.numbers import check_digit

AREA = "440311001002"
CENTRE = (22.780, 113.930)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
_WINDOW = 200  # QoS 1 messages in flight to the broker at most


@dataclass
class SimConfig:
    smoke: int = 20
    readers: int = 5
    rate: float = 10.0  # messages per second, all devices together
    alarms: bool = False
    bad: bool = False
    duration: float | None = None
    count: int | None = None
    area: str = AREA
    seed: int | None = None


@dataclass
class SimStats:
    sent: int = 0
    bad: int = 0
    alarms: int = 0
    commands: int = 0
    verdicts: int = 0
    started: float = field(default_factory=time.monotonic)


def smoke_ids(n: int) -> list[str]:
    return [f"SIM-SD-{i:04d}" for i in range(1, n + 1)]


def reader_ids(n: int) -> list[str]:
    return [f"SIM-RD-{i:03d}" for i in range(1, n + 1)]


async def register(conn: AsyncConnection[DictRow], cfg: SimConfig) -> int:
    """Create the community and any simulated devices that are missing; returns how many."""
    codes = [cfg.area]
    while (parent := parent_code(codes[-1])) is not None:
        codes.append(parent)
    known = await existing_areas(conn, set(codes))
    for code in reversed(codes):
        if code not in known:
            await create_area(conn, AreaIn(code=code, name=f"模拟 {code}"))
    wanted = [(i, DeviceType.SMOKE_SENSOR) for i in smoke_ids(cfg.smoke)]
    wanted += [(i, DeviceType.ID_READER) for i in reader_ids(cfg.readers)]
    taken = await existing_ids(conn, [i for i, _ in wanted])
    elsewhere = {r.id: r.area for r in await device_refs(conn, sorted(taken)) if r.area != cfg.area}
    if elsewhere:
        first, area = min(elsewhere.items())
        raise Conflict(
            f"{len(elsewhere)} of the simulated devices are registered in another area"
            f" ({first} in {area}), so their messages to {cfg.area} would all be refused:"
            f" use --area {area}, or delete those devices first"
        )
    rng = random.Random(7)
    new = [
        DeviceIn(
            id=device_id,
            type=kind,
            area=cfg.area,
            site="模拟小区",
            building=f"{rng.randint(1, 12)}栋",
            floor=str(rng.randint(1, 30)),
            lat=CENTRE[0] + rng.uniform(-0.01, 0.01),
            lon=CENTRE[1] + rng.uniform(-0.01, 0.01),
            tags={"simulated": True},
        )
        for device_id, kind in wanted
        if device_id not in taken
    ]
    await create_devices_bulk(conn, new)
    return len(new)


def random_id_number(rng: random.Random, *, valid: bool = True) -> str:
    """A resident ID number with a correct (or, on request, wrong) check digit."""
    born = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
    first17 = f"440311{born:%Y%m%d}{rng.randint(0, 999):03d}"
    digit = check_digit(first17)
    if not valid:
        digit = "0" if digit != "0" else "1"
    return first17 + digit


class Simulator:
    """Publishes paced traffic until the duration or count is reached, or `stop()`."""

    def __init__(
        self,
        mqtt_url: MqttUrl,
        cfg: SimConfig,
        *,
        mqtt_v5: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.url = mqtt_url
        self.stats = SimStats()
        self.progress = progress
        self._rng = random.Random(cfg.seed)
        self._stop = threading.Event()
        self._seq: dict[str, int] = {}
        base = int(time.time() * 1000)  # seq keeps rising across runs, so none are duplicates
        self._smoke = {
            i: {"level": 0.05, "battery": self._rng.uniform(30, 100)} for i in smoke_ids(cfg.smoke)
        }
        self._readers = reader_ids(cfg.readers)
        for device_id in [*self._smoke, *self._readers]:
            self._seq[device_id] = base
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"shaobing-sim-{self._rng.randint(0, 1 << 30)}",
            protocol=mqtt.MQTTv5 if mqtt_v5 else mqtt.MQTTv311,
        )
        configure(self._client, mqtt_url)
        self._client.max_inflight_messages_set(_WINDOW)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_command
        self._unacked = Unacknowledged()
        self._commands: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._silenced_until: dict[str, float] = {}

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if not rc.is_failure:
            client.subscribe(f"sb/{self.cfg.area}/+/cmd", qos=1)

    def _on_command(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # paho's thread: hand the command to the publishing loop, which owns the counters.
        device_id = message.topic.split("/")[2]
        try:
            command = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(command, dict):
            return
        if command.get("type") == "id_verdict" and device_id in self._readers:
            self._show_verdict(device_id, command)
        elif device_id in self._smoke or device_id in self._readers:
            self._commands.put((device_id, command))

    def _show_verdict(self, reader: str, verdict: dict[str, Any]) -> None:
        """What the grid worker's phone would show: the masked card and what to do."""
        self.stats.verdicts += 1
        if self.progress:
            self.progress(
                f"simulate: {reader} read {verdict.get('read_seq')}: {verdict.get('verdict')}"
                f" {verdict.get('masked_id')} {verdict.get('masked_name') or ''}"
                f" {verdict.get('message')}"
            )

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> SimStats:
        self._client.connect_async(self.url.host, self.url.port, keepalive=30)
        self._client.loop_start()
        try:
            self._publish_status()
            self._loop()
            self._unacked.wait(0, stop=self._stop)  # what was counted as sent reached the broker
        finally:
            self._client.disconnect()
            self._client.loop_stop()
        return self.stats

    def _publish_status(self) -> None:
        for device_id in [*self._smoke, *self._readers]:
            body = json_payload({"online": True, "fw": "sim-1.0"})
            self._send(self._topic(device_id, "status"), body, retain=True)

    def _send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 once connected (a broker that restarts is waited for), keeping
        at most the window unacknowledged."""
        while not self._stop.is_set():
            self._wait_connected()
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._unacked.add(info)
                self._unacked.wait(_WINDOW, stop=self._stop)
                return
            # The connection went between the check and the publish: again once it is back
            # (a second copy is harmless: (device_id, seq, ts) makes it idempotent).

    def _wait_connected(self) -> None:
        if self._client.is_connected():
            return
        if self.progress:
            self.progress("simulate: the broker is not reachable; waiting for it")
        while not self._client.is_connected() and not self._stop.is_set():
            self._stop.wait(0.05)

    def _loop(self) -> None:
        cfg = self.cfg
        interval = 1.0 / cfg.rate if cfg.rate > 0 else 0.0
        next_at = time.monotonic()
        last_report = next_at
        while not self._stop.is_set():
            if cfg.count is not None and self.stats.sent >= cfg.count:
                break
            if cfg.duration is not None and time.monotonic() - self.stats.started >= cfg.duration:
                break
            self._answer_commands()
            topic, payload = self._next_message()
            self._send(topic, payload)
            self.stats.sent += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            if self.progress and time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                elapsed = last_report - self.stats.started
                self.progress(
                    f"simulate: {self.stats.sent} sent ({self.stats.sent / elapsed:.0f}/s),"
                    f" {self.stats.alarms} alarms, {self.stats.bad} malformed"
                )

    def _next_message(self) -> tuple[str, bytes]:
        rng = self._rng
        if self.cfg.bad and rng.random() < 0.02:
            self.stats.bad += 1
            return self._bad_message()
        if self._readers and rng.random() < 0.1:
            return self._id_read(rng.choice(self._readers))
        device_id = rng.choice(list(self._smoke))
        if self.cfg.alarms and rng.random() < 0.002 and not self._silenced(device_id):
            self.stats.alarms += 1
            state = self._smoke[device_id]
            state["level"] = rng.uniform(2.0, 5.0)
            return self._event(
                device_id,
                {"type": "smoke_alarm", "smoke": round(state["level"], 2), "temp_c": 48.0},
            )
        return self._telemetry(device_id)

    def _silenced(self, device_id: str) -> bool:
        return self._silenced_until.get(device_id, 0.0) > time.monotonic()

    def _answer_commands(self) -> None:
        while True:
            try:
                device_id, command = self._commands.get_nowait()
            except queue.Empty:
                return
            ok, detail = self._carry_out(device_id, command)
            answer = {
                "type": "cmd_result",
                "cmd_id": command.get("cmd_id"),
                "ok": ok,
                "detail": detail,
            }
            self._send(*self._event(device_id, answer))
            self.stats.commands += 1

    def _carry_out(self, device_id: str, command: dict[str, Any]) -> tuple[bool, str]:
        args = command.get("args") or {}
        match command.get("command"):
            case "silence" if device_id in self._smoke:
                try:
                    span = parse_duration(str(args.get("duration", "30m")))
                except ValueError as exc:
                    return False, str(exc)
                self._silenced_until[device_id] = time.monotonic() + span.total_seconds()
                return True, f"silenced for {args.get('duration', '30m')}"
            case "self_test":
                return True, "self test passed"
            case "reboot":
                return True, "rebooted"
            case "set_report_interval":
                return True, f"reporting every {args.get('seconds')} s"
        return False, f"unknown command {command.get('command')!r}"

    def _telemetry(self, device_id: str) -> tuple[str, bytes]:
        rng = self._rng
        state = self._smoke[device_id]
        # Smoke drifts around a clean-air baseline and decays back after an alarm.
        state["level"] = max(0.0, state["level"] * 0.9 + 0.005 + rng.gauss(0, 0.01))
        state["battery"] = max(0.0, state["battery"] - rng.uniform(0, 0.01))
        body = {
            "seq": self._next_seq(device_id),
            "ts": int(time.time() * 1000),
            "smoke": round(state["level"], 3),
            "temp_c": round(24 + rng.gauss(0, 0.5), 1),
            "battery_pct": round(state["battery"], 1),
            "rssi_dbm": rng.randint(-110, -70),
        }
        return self._topic(device_id, "telemetry"), json_payload(body)

    def _event(self, device_id: str, fields: dict[str, object]) -> tuple[str, bytes]:
        body = {"seq": self._next_seq(device_id), "ts": int(time.time() * 1000), **fields}
        return self._topic(device_id, "event"), json_payload(body)

    def _id_read(self, reader: str) -> tuple[str, bytes]:
        rng = self._rng
        name = (
            rng.choice(_SURNAMES)
            + rng.choice(_GIVEN)
            + (rng.choice(_GIVEN) if rng.random() < 0.6 else "")
        )
        card = {
            "id_number": random_id_number(rng),
            "name": name,
            "sex": rng.choice(["男", "女"]),
            "nation": "汉",
            "address": "广东省深圳市宝安区模拟路1号",
            "authority": "深圳市公安局宝安分局",
            "valid_from": "20200101",
            "valid_to": "20400101",
        }
        return self._event(
            reader,
            {
                "type": "id_read",
                "operator": f"GW-{rng.randint(1, 300):04d}",
                "lat": CENTRE[0] + rng.uniform(-0.01, 0.01),
                "lon": CENTRE[1] + rng.uniform(-0.01, 0.01),
                "card": card,
            },
        )

    def _bad_message(self) -> tuple[str, bytes]:
        rng = self._rng
        device_id = rng.choice(list(self._smoke))
        topic = self._topic(device_id, "telemetry")
        now = int(time.time() * 1000)
        choices: list[tuple[str, bytes]] = [
            (topic, b'{"seq": 1, "smoke": '),  # bad_json
            (topic, b"[1, 2, 3]"),  # not_object
            (self._topic("SIM-NOBODY", "telemetry"), json_payload({"seq": 1, "ts": now})),
            (f"sb/440311001009/{device_id}/telemetry", json_payload({"seq": 1, "ts": now})),
            (topic, json_payload({"seq": self._next_seq(device_id), "ts": now + 86_400_000})),
            (topic, json_payload({"seq": self._next_seq(device_id), "ts": now, "smoke": "lots"})),
            ("sb/not-a-topic", b"{}"),
        ]
        if self._readers:
            reader = rng.choice(self._readers)
            body = {
                "seq": self._next_seq(reader),
                "ts": now,
                "type": "id_read",
                "card": {"id_number": "12345"},
            }
            choices.append((self._topic(reader, "event"), json_payload(body)))
        return rng.choice(choices)

    def _next_seq(self, device_id: str) -> int:
        self._seq[device_id] = self._seq.get(device_id, 0) + 1
        return self._seq[device_id]

    def _topic(self, device_id: str, channel: str) -> str:
        return f"sb/{self.cfg.area}/{device_id}/{channel}"
