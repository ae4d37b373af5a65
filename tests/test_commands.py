"""Commands to devices on a real mosquitto: queued by the API, published QoS 1 by ingest's
command sender on the device's own `cmd` topic, answered by the device's `cmd_result` event
through the real consumer; one left unanswered expires. Who may send them, and which devices
cannot take them."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from hub.db import connect
from hub.settings import MqttUrl
from hub.supervisor import Probe
from ingest.command_sender import CommandSenderConfig, run_command_sender
from simulator.fleet import SimConfig, Simulator, register
from tests.ingest_helpers import Publisher, running_consumer
from tests.mqtt_helpers import connected, subscribe
from tests.notify_helpers import wait_until
from tests.rules_helpers import running_rules, seed
from tests.test_registry_api import COMMUNITY, assert_error, register_area
from tests.threads import in_background

SENSOR, OTHER = "SD-CMD-1", "SD-CMD-2"


@contextmanager
def running_sender(database_url: str, broker: MqttUrl) -> Iterator[None]:
    probe = Probe("commands")
    config = CommandSenderConfig(database_url, broker, tick_s=0.2)
    with in_background(lambda: run_command_sender(config, probe), lambda: probe.up,
                       what="command sender"):  # fmt: skip
        yield


@contextmanager
def device_listening(broker: MqttUrl, device_id: str) -> Iterator[queue.Queue[mqtt.MQTTMessage]]:
    """A device subscribed QoS 1 to its own cmd topic."""
    with connected(broker.port, broker.username or "", broker.password or "",
                   host=broker.host) as (client, received):  # fmt: skip
        subscribe(client, f"sb/{COMMUNITY}/{device_id}/cmd")
        yield received


@pytest.fixture
def sensors(admin: httpx.Client) -> httpx.Client:
    register_area(admin)
    for device_id, building in ((SENSOR, "3栋"), (OTHER, "3栋")):
        response = admin.post("/api/v1/devices", json={
            "id": device_id, "type": "smoke_sensor", "area": COMMUNITY, "site": "楼村花园",
            "building": building})  # fmt: skip
        assert response.status_code == 201, response.text
    return admin


def status_of(client: httpx.Client, device_id: str, cmd_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/devices/{device_id}/commands/{cmd_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def answer(pub: Publisher, device_id: str, seq: int, cmd_id: str, *, ok: bool) -> None:
    pub.send(f"sb/{COMMUNITY}/{device_id}/event",
             {"seq": seq, "ts": int(time.time() * 1000), "type": "cmd_result", "cmd_id": cmd_id,
              "ok": ok, "detail": "done" if ok else "sounder fault"})  # fmt: skip


def test_a_command_is_published_answered_and_one_expires(
    sensors: httpx.Client, client_for: Any, database_url: str, mqtt_server: MqttUrl
) -> None:
    dispatcher = client_for("dispatcher", COMMUNITY[:6])
    with (running_consumer(database_url, mqtt_server), running_sender(database_url, mqtt_server),
          device_listening(mqtt_server, SENSOR) as inbox):  # fmt: skip
        lapsing = dispatcher.post(f"/api/v1/devices/{SENSOR}/commands",
                                  json={"command": "self_test", "ttl": "10s"})  # fmt: skip
        assert lapsing.status_code == 202, lapsing.text
        sent = dispatcher.post(f"/api/v1/devices/{SENSOR}/commands",
                               json={"command": "silence", "args": {"duration": "15m"}})  # fmt: skip
        assert sent.status_code == 202, sent.text
        command = sent.json()
        assert command["status"] == "pending" and command["args"] == {"duration": "15m"}

        downlinks = [json.loads(inbox.get(timeout=10).payload) for _ in range(2)]
        assert [d["command"] for d in downlinks] == ["self_test", "silence"]
        assert set(downlinks[1]) == {"cmd_id", "command", "args", "expires_at"}
        assert downlinks[1]["cmd_id"] == command["id"]
        assert downlinks[1]["args"] == {"duration": "15m"}
        wait_until(lambda: status_of(dispatcher, SENSOR, command["id"])["status"] == "sent")

        pub = Publisher(mqtt_server)
        answer(pub, OTHER, 1, command["id"], ok=True)  # another device cannot answer for it
        answer(pub, SENSOR, 1, command["id"], ok=True)
        answer(pub, SENSOR, 2, command["id"], ok=False)  # a second answer changes nothing
        pub.close()
        done = wait_until(lambda: (s := status_of(dispatcher, SENSOR, command["id"]))["status"]
                          != "sent" and s)  # fmt: skip
        assert (done["status"], done["detail"]) == ("acked", "done")
        assert done["answered_at"] is not None

        expired = wait_until(
            lambda: (s := status_of(dispatcher, SENSOR, lapsing.json()["id"]))["status"]
            == "expired" and s, timeout=20,
        )  # fmt: skip
        assert expired["detail"] == "no answer from the device in time"

    listed = dispatcher.get(f"/api/v1/devices/{SENSOR}/commands").json()
    assert [(c["command"], c["status"]) for c in listed] == [
        ("silence", "acked"), ("self_test", "expired")]  # fmt: skip
    assert dispatcher.get(f"/api/v1/devices/{SENSOR}/commands?status=acked").json()[0]["id"] \
        == command["id"]  # fmt: skip


def test_a_failed_answer_and_a_command_sent_while_the_device_was_away(
    sensors: httpx.Client, database_url: str, mqtt_server: MqttUrl
) -> None:
    with running_consumer(database_url, mqtt_server), running_sender(database_url, mqtt_server):
        command = sensors.post(f"/api/v1/devices/{OTHER}/commands",
                               json={"command": "set_report_interval",
                                     "args": {"seconds": 600}}).json()  # fmt: skip
        # Nobody listens: the broker has it, so it is sent; the device answers when it can.
        wait_until(lambda: status_of(sensors, OTHER, command["id"])["status"] == "sent")
        pub = Publisher(mqtt_server)
        answer(pub, OTHER, 1, command["id"], ok=False)
        pub.close()
        wait_until(lambda: status_of(sensors, OTHER, command["id"])["status"] == "failed")
    assert status_of(sensors, OTHER, command["id"])["detail"] == "sounder fault"


def test_who_may_command_and_what_is_refused(sensors: httpx.Client, client_for: Any) -> None:
    path = f"/api/v1/devices/{SENSOR}/commands"
    viewer = client_for("viewer", COMMUNITY[:6])
    assert_error(viewer.post(path, json={"command": "reboot"}), 403, "forbidden")
    assert viewer.get(path).status_code == 200  # a viewer still sees them
    integrator = client_for("integrator", COMMUNITY[:6])
    assert_error(integrator.post(path, json={"command": "reboot"}), 403, "forbidden")
    elsewhere = client_for("operator", "440305")
    assert_error(elsewhere.post(path, json={"command": "reboot"}), 404, "not_found")
    operator = client_for("operator", COMMUNITY[:6])
    assert operator.post(path, json={"command": "reboot"}).status_code == 202

    assert_error(operator.post(path, json={"command": "explode"}), 422, "validation_error")
    assert_error(operator.post(path, json={"command": "set_report_interval",
                                           "args": {"seconds": 1}}), 422, "validation_error",
                 "args.seconds")  # fmt: skip
    assert_error(operator.post(path, json={"command": "reboot", "args": {"now": True}}),
                 422, "validation_error", "args.now")  # fmt: skip
    assert_error(
        operator.post(path, json={"command": "reboot", "ttl": "3d"}), 422, "validation_error"
    )

    sensors.post("/api/v1/devices", json={"id": "RD-CMD", "type": "id_reader", "area": COMMUNITY})
    assert_error(operator.post("/api/v1/devices/RD-CMD/commands", json={"command": "silence"}),
                 422, "validation_error", "id_reader")  # fmt: skip
    sensors.post("/api/v1/devices", json={"id": "NB-CMD", "type": "smoke_sensor",
                                          "area": COMMUNITY, "tags": {"ctwing_id": "ct-9"}})  # fmt: skip
    assert_error(operator.post("/api/v1/devices/NB-CMD/commands", json={"command": "reboot"}),
                 422, "validation_error", "CTWing")  # fmt: skip
    sensors.patch(f"/api/v1/devices/{OTHER}", json={"enabled": False})
    assert_error(operator.post(f"/api/v1/devices/{OTHER}/commands", json={"command": "reboot"}),
                 422, "validation_error", "disabled")  # fmt: skip


def test_an_incident_silences_the_sensors_that_raised_it(
    sensors: httpx.Client, client_for: Any, database_url: str, mqtt_server: MqttUrl
) -> None:
    seed(database_url)
    dispatcher = client_for("dispatcher", COMMUNITY)
    with running_rules(database_url), running_consumer(database_url, mqtt_server):
        pub = Publisher(mqtt_server)
        for seq, device_id in enumerate((SENSOR, OTHER), start=1):
            pub.send(f"sb/{COMMUNITY}/{device_id}/event",
                     {"seq": seq, "ts": int(time.time() * 1000), "type": "smoke_alarm",
                      "smoke": 3.4})  # fmt: skip
        pub.close()
        incident = wait_until(lambda: (items := dispatcher.get("/api/v1/incidents").json()[
            "items"]) and items[0]["signal_count"] == 2 and items[0])  # fmt: skip

    path = f"/api/v1/incidents/{incident['id']}/silence-sensors"
    viewer = client_for("viewer", COMMUNITY)
    assert_error(viewer.post(path, json={}), 403, "forbidden")
    silenced = dispatcher.post(path, json={"duration": "20m"})
    assert silenced.status_code == 202, silenced.text
    commands = silenced.json()["commands"]
    assert sorted((c["device_id"], c["command"], c["args"]["duration"], c["incident_id"])
                  for c in commands) == [
        (SENSOR, "silence", "20m", incident["id"]), (OTHER, "silence", "20m", incident["id"])]  # fmt: skip
    audit = dispatcher.get(f"/api/v1/incidents/{incident['id']}/audit").json()
    assert audit[-1]["action"] == "silence_sensors"
    assert sorted(audit[-1]["data"]["devices"]) == [SENSOR, OTHER]

    dispatcher.post(f"/api/v1/incidents/{incident['id']}/actions",
                    json={"action": "close", "reason": "false_alarm"})  # fmt: skip
    assert_error(dispatcher.post(path, json={}), 409, "conflict", "closed")


def test_the_simulators_devices_carry_out_commands_and_answer(
    admin: httpx.Client, database_url: str, queueing_broker: MqttUrl
) -> None:
    """On a broker of the test's own: the simulator's retained statuses reach no other test.
    Its readers print the ID-card verdicts they get, masked."""
    mqtt_server = queueing_broker
    cfg = SimConfig(smoke=2, readers=1, rate=20, duration=60, area=COMMUNITY, seed=3)

    async def prepare() -> None:
        conn = await connect(database_url)
        async with conn:
            await register(conn, cfg)
            await conn.commit()

    asyncio.run(prepare())
    printed: list[str] = []
    simulator = Simulator(mqtt_server, cfg, progress=printed.append)
    thread = threading.Thread(target=simulator.run, daemon=True)
    with (running_consumer(database_url, mqtt_server, verdicts=True),
          running_sender(database_url, mqtt_server)):  # fmt: skip
        thread.start()
        time.sleep(1)  # connected and subscribed
        asked = [admin.post(f"/api/v1/devices/{device}/commands", json=body).json()
                 for device, body in (("SIM-SD-0001", {"command": "silence"}),
                                      ("SIM-RD-001", {"command": "self_test"}),
                                      ("SIM-RD-001", {"command": "reboot"}))]  # fmt: skip
        answers = [wait_until(lambda c=c: (s := status_of(admin, c["device_id"], c["id"]))[
            "status"] == "acked" and s) for c in asked]  # fmt: skip
        wait_until(lambda: simulator.stats.verdicts > 0)
        simulator.stop()
        thread.join(timeout=10)
    assert [a["detail"] for a in answers] == ["silenced for 30m", "self test passed", "rebooted"]
    assert simulator.stats.commands == 3
    shown = [line for line in printed if "SIM-RD-001 read" in line]
    assert shown and all(" ok " in line and "**********" in line for line in shown)
