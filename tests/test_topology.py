"""The split deployment as an operator runs it: `shaobing api`, `ingest` and `rules` as
separate processes on real PostgreSQL and mosquitto, through kills and restarts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import connect as ws_connect

from hub.embedded.ports import free_port
from hub.embedded.postgres import EmbeddedPostgres
from hub.settings import MqttUrl
from tests.conftest import ADMIN_TOKEN
from tests.hub_processes import SHAOBING, HubProcess, hub_env
from tests.ingest_helpers import Publisher, wait_for
from tests.services import scratch_database
from tests.test_registry_api import COMMUNITY, register_area
from tests.test_stream import next_event

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

OTHER = "440311002001"  # a community of another street
SECRET = "topology-test-secret"
Start = Callable[..., HubProcess]


@pytest.fixture
def start(queueing_broker: MqttUrl, tmp_path: Path) -> Iterator[Callable[..., Start]]:
    """`start(database_url)` → a function that starts `shaobing <args>` processes on that
    database and the test's broker; all stopped at the end."""
    started: list[HubProcess] = []

    def on(database_url: str) -> Start:
        env = hub_env(
            SB_DATABASE_URL=database_url,
            SB_MQTT_URL=f"mqtt://{queueing_broker.host}:{queueing_broker.port}",
            SB_ADMIN_TOKEN=ADMIN_TOKEN,
            SB_SECRET=SECRET,
            SB_DATA_DIR=str(tmp_path / "data"),
        )

        def process(name: str, *args: str, **extra: str) -> HubProcess:
            hub = HubProcess(name, list(args), {**env, **extra}, tmp_path).start()
            started.append(hub)
            return hub

        return process

    yield on
    for hub in started:
        hub.stop()


def register(client: httpx.Client, devices: dict[str, tuple[str, str]]) -> None:
    """Smoke sensors: id → (area, building)."""
    for device_id, (area, building) in devices.items():
        response = client.post("/api/v1/devices", json={
            "id": device_id, "type": "smoke_sensor", "area": area, "site": "楼村花园",
            "building": building,
        })  # fmt: skip
        assert response.status_code == 201, response.text


def alarm(device_id: str, area: str, seq: int) -> tuple[str, dict[str, Any]]:
    body = {"seq": seq, "ts": int(time.time() * 1000), "type": "smoke_alarm", "smoke": 3.1}
    return f"sb/{area}/{device_id}/event", body


def incidents(database_url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT building, signal_count, area FROM incidents ORDER BY building"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def handled_all(database_url: str, expected_alarms: int, partitions: int = 1) -> None:
    """Every alarm is in the log and each of the `partitions` rules partitions has read past
    it (a partition writes its cursor with the first signal it handles: until then it has
    none, and the others' cursors alone would say nothing of it)."""
    wait_for(database_url, "SELECT count(*) FROM signals WHERE kind = 'smoke_alarm'",
             lambda n: n == expected_alarms, timeout=60)  # fmt: skip
    wait_for(
        database_url,
        f"SELECT count(*) = {int(partitions)} AND bool_and(c.last_signal_id >= s.top)"
        " FROM rule_cursors c, (SELECT max(id) AS top FROM signals) s",
        lambda done: done is True,
        timeout=60,
    )


def publish_in_background(
    broker: MqttUrl, messages: list[tuple[str, dict[str, Any]]], every: float
) -> threading.Thread:
    def run() -> None:
        pub = Publisher(broker)
        for topic, body in messages:
            pub.send(topic, body)
            time.sleep(every)
        pub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


BUILDINGS = {f"SD-B{i:02d}": (COMMUNITY, f"{i}栋") for i in range(20)}
ROUNDS = 10


def rounds_of_alarms() -> list[tuple[str, dict[str, Any]]]:
    """Ten alarms from each of the twenty buildings, interleaved."""
    return [alarm(d, COMMUNITY, seq) for seq in range(1, ROUNDS + 1) for d in BUILDINGS]


def assert_one_incident_per_building(database_url: str) -> None:
    found = incidents(database_url)
    assert sorted(b for b, _, _ in found) == sorted(b for _, b in BUILDINGS.values())
    assert {count for _, count, _ in found} == {ROUNDS}, found
    with psycopg.connect(database_url) as conn:
        linked = conn.execute("SELECT count(*) FROM incident_signals").fetchone()
    assert linked == (len(BUILDINGS) * ROUNDS,)


def test_an_alarm_reaches_the_websocket_of_another_process(
    start: Callable[..., Start], admin: httpx.Client, database_url: str, queueing_broker: MqttUrl
) -> None:
    register_area(admin)
    register(admin, {"SD-T1": (COMMUNITY, "1栋")})
    run = start(database_url)
    processes = [run("rules", "rules"), run("ingest", "ingest"), run("api", "api")]
    for hub in processes:
        hub.wait_ready()
    api = processes[2]
    with ws_connect(f"ws://127.0.0.1:{api.http_port}/api/v1/stream?token={ADMIN_TOKEN}") as ws:
        next_event(ws, "stream.ready")
        pub = Publisher(queueing_broker)
        pub.send(*alarm("SD-T1", COMMUNITY, 1))
        pub.close()
        created = next_event(ws, "incident.created", timeout=30)
    assert created["incident"]["building"] == "1栋"
    assert created["incident"]["rule_id"] == "smoke-alarm"


def test_a_rules_process_killed_mid_stream_loses_and_repeats_nothing(
    start: Callable[..., Start], admin: httpx.Client, database_url: str, queueing_broker: MqttUrl
) -> None:
    register_area(admin)
    register(admin, BUILDINGS)
    run = start(database_url)
    rules, ingest = run("rules", "rules"), run("ingest", "ingest")
    rules.wait_ready()
    ingest.wait_ready()
    feeder = publish_in_background(queueing_broker, rounds_of_alarms(), every=0.01)
    wait_for(database_url, "SELECT count(*) FROM incidents", lambda n: n >= 5, timeout=30)
    rules.kill()  # mid-stream: incidents open, attaches in flight
    feeder.join(timeout=60)
    run("rules-again", "rules").wait_ready()
    handled_all(database_url, len(BUILDINGS) * ROUNDS)
    assert_one_incident_per_building(database_url)


def test_one_of_two_ingest_processes_killed_mid_stream(
    start: Callable[..., Start], admin: httpx.Client, database_url: str, queueing_broker: MqttUrl
) -> None:
    register_area(admin)
    register(admin, BUILDINGS)
    run = start(database_url)
    shared = {"SB_INGEST_SHARED": "true"}
    rules = run("rules", "rules")
    first = run("ingest-a", "ingest", SB_INGEST_CLIENT_ID="ingest-a", **shared)
    second = run("ingest-b", "ingest", SB_INGEST_CLIENT_ID="ingest-b", **shared)
    for hub in (rules, first, second):
        hub.wait_ready()
    feeder = publish_in_background(queueing_broker, rounds_of_alarms(), every=0.01)
    wait_for(database_url, "SELECT count(*) FROM uplinks", lambda n: n >= 40, timeout=30)
    first.kill()
    feeder.join(timeout=60)
    # Back with its own session: what it held unacknowledged comes back to it.
    run("ingest-a-again", "ingest", SB_INGEST_CLIENT_ID="ingest-a", **shared).wait_ready()
    handled_all(database_url, len(BUILDINGS) * ROUNDS)
    assert_one_incident_per_building(database_url)


def test_rules_partitions_keep_to_their_areas(
    start: Callable[..., Start], admin: httpx.Client, database_url: str, queueing_broker: MqttUrl
) -> None:
    register_area(admin)
    register_area(admin, OTHER, "外街社区")
    devices = {f"SD-M{i}": (COMMUNITY, f"{i}栋") for i in range(3)}
    devices |= {f"SD-O{i}": (OTHER, f"{i}栋") for i in range(2)}
    register(admin, devices)
    run = start(database_url)
    mine = run("rules-mine", "rules", "--area", "440311001")
    theirs = run("rules-theirs", "rules", "--area", "440311002")
    ingest = run("ingest", "ingest")
    for hub in (mine, theirs, ingest):
        hub.wait_ready()
    overlapping = run("rules-overlap", "rules", "--area", "440311")
    assert overlapping.process is not None and overlapping.process.wait(timeout=60) == 1
    assert "overlaps partition" in overlapping.log()
    pub = Publisher(queueing_broker)
    for device_id, (area, _) in devices.items():
        pub.send(*alarm(device_id, area, 1))
    pub.close()
    handled_all(database_url, len(devices), partitions=2)
    by_area = [area for _, _, area in incidents(database_url)]
    assert sorted(by_area) == sorted(area for area, _ in devices.values())
    opened = 'sb_rules_decisions_total{outcome="opened"}'
    assert (mine.metric(opened), theirs.metric(opened)) == (3, 2)


def test_processes_started_at_the_same_instant_all_come_up(
    start: Callable[..., Start], pg_server: str
) -> None:
    with scratch_database(pg_server) as fresh:  # nothing migrated, nothing seeded
        run = start(fresh)
        processes = [
            run("ingest-a", "ingest", SB_INGEST_CLIENT_ID="ingest-a", SB_INGEST_SHARED="true"),
            run("ingest-b", "ingest", SB_INGEST_CLIENT_ID="ingest-b", SB_INGEST_SHARED="true"),
            run("rules-a", "rules", "--area", "440311"),
            run("rules-b", "rules", "--area", "440312"),
            run("api", "api"),
        ]
        for hub in processes:
            hub.wait_ready(timeout=90)
        with psycopg.connect(fresh) as conn:
            rules = conn.execute("SELECT count(*) FROM rules WHERE builtin").fetchone()
        assert rules is not None and rules[0] >= 13
        for hub in processes:
            assert hub.stop() == 0, hub.log()


def test_every_component_recovers_from_a_database_restart(
    start: Callable[..., Start], tmp_path: Path, queueing_broker: MqttUrl
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    port = free_port()
    url = server.start(port=port)
    try:
        run = start(url)
        processes = [run("rules", "rules"), run("ingest", "ingest"), run("api", "api")]
        for hub in processes:
            hub.wait_ready(timeout=90)
        api = httpx.Client(base_url=processes[2].base,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        register_area(api)
        register(api, {"SD-R1": (COMMUNITY, "1栋"), "SD-R2": (COMMUNITY, "2栋")})
        pub = Publisher(queueing_broker)
        pub.send(*alarm("SD-R1", COMMUNITY, 1))
        wait_for(url, "SELECT count(*) FROM incidents", lambda n: n == 1, timeout=30)
        pids = [hub.process.pid for hub in processes if hub.process]

        server.stop()
        for hub in processes:
            body = hub.wait_for(lambda status: status == 503, 30, "reported the outage")
            assert body["database"] != "ok"
        server.start(port=port)
        for hub in processes:
            hub.wait_ready(timeout=60)
        assert [hub.process.pid for hub in processes if hub.process] == pids  # no restarts

        pub.send(*alarm("SD-R2", COMMUNITY, 1))  # after the outage, the whole path works
        pub.close()
        wait_for(url, "SELECT count(*) FROM incidents", lambda n: n == 2, timeout=60)
        ready = [json.dumps(hub.readiness()[1]["components"]) for hub in processes]
        assert all('"up": false' not in r for r in ready), ready
    finally:
        server.stop()


def test_no_request_fails_once_the_database_is_back(
    start: Callable[..., Start], tmp_path: Path
) -> None:
    """Connections pooled before a PostgreSQL restart are dead after it: each is checked as
    it is handed out and replaced, so the first request after the restart succeeds, and so
    does every one after it; /readyz says the database is down while it is."""
    server = EmbeddedPostgres(tmp_path / "pg")
    port = free_port()
    url = server.start(port=port)
    try:
        api = start(url)("api", "api")
        api.wait_ready(timeout=90)
        client = httpx.Client(base_url=api.base, timeout=60,
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        register_area(client)
        fill_the_pool(client, url)

        server.stop()
        body = api.wait_for(lambda status: status == 503, 30, "reported the outage")
        assert body["database"] != "ok" and body["status"] == "unavailable"
        server.start(port=port)

        answers = [client.post("/api/v1/areas", json={"code": f"44031100{i:04d}",
                                                      "name": f"社区{i}"}).status_code
                   for i in range(2, 22)]  # fmt: skip
        answers += [client.get("/api/v1/areas").status_code for _ in range(20)]
        assert answers == [201] * 20 + [200] * 20
        status, ready = api.readiness()
        assert (status, ready["database"]) == (200, "ok"), ready
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM areas").fetchone() == (21,)
    finally:
        server.stop()


def fill_the_pool(client: httpx.Client, url: str) -> None:
    """Concurrent requests until the API holds several pooled connections: each one goes
    stale in the restart."""

    def busy() -> None:
        for _ in range(20):
            assert client.get("/api/v1/areas").status_code == 200

    deadline = time.monotonic() + 30
    while api_connections(url) < 4:
        assert time.monotonic() < deadline, "the API never held several connections"
        threads = [threading.Thread(target=busy) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def api_connections(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname ="
                           " current_database() AND pid <> pg_backend_pid()").fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def test_the_api_alone_on_a_fresh_database_migrates_before_it_answers(
    start: Callable[..., Start], pg_server: str
) -> None:
    """Started alone on an empty database, `shaobing api` answers no request before the
    schema is there: never a 500, from the first answer on."""
    with scratch_database(pg_server) as fresh:
        api = start(fresh)("api", "api")
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        answers: list[int] = []
        deadline = time.monotonic() + 90
        while not answers or answers[-1] != 200:
            assert time.monotonic() < deadline, f"never answered: {answers}\n{api.log()}"
            try:
                answers.append(httpx.get(f"{api.base}/api/v1/areas", headers=headers).status_code)
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet
        assert set(answers) == {200}, answers
        created = httpx.post(f"{api.base}/api/v1/areas", headers=headers,
                             json={"code": COMMUNITY, "name": "楼村社区"})  # fmt: skip
        assert created.status_code == 201, created.text
        api.wait_ready()
        with psycopg.connect(fresh) as conn:
            rules = conn.execute("SELECT count(*) FROM rules WHERE builtin").fetchone()
        assert rules is not None and rules[0] >= 13


def test_the_split_commands_need_their_settings() -> None:
    import subprocess

    for command in (["rules"], ["ingest"], ["api"]):
        done = subprocess.run([*SHAOBING, *command], env=hub_env(), capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1 and "needs SB_DATABASE_URL" in done.stderr, done.stderr


def parse_command(group: Any, args: list[str]) -> None:
    """Parse `args` the way click would run them, without running anything."""
    import click

    command: Any = group
    ctx = click.Context(group, info_name="shaobing")
    while isinstance(command, click.Group):
        name, *args = args
        found = command.get_command(ctx, name)
        assert found is not None, f"no command {name}"
        command = found
    command.make_context(command.name, args, parent=ctx)


def test_the_compose_file_runs_commands_that_exist() -> None:
    """docker/compose.yaml cannot run here (no Docker engine); its commands must at least be
    ones the CLI takes, with options it knows."""
    import yaml

    from shaobing.cli import main

    compose = yaml.safe_load((Path(__file__).parent.parent / "docker/compose.yaml").read_text())
    roles = set()
    for name, service in compose["services"].items():
        command = service.get("command")
        if not isinstance(command, list) or command[0] != "shaobing":
            continue
        parse_command(main, list(command[1:]))  # raises on an unknown command or option
        roles.add(command[1])
        assert service["environment"]["SB_SECRET"], name
    assert {"api", "ingest", "rules", "vision", "migrate"} <= roles
    ingest_ids = {s["environment"].get("SB_INGEST_CLIENT_ID") for s in compose["services"].values()
                  if s.get("command", [None, None])[1:2] == ["ingest"]}  # fmt: skip
    assert len(ingest_ids) == 2  # each ingest process its own durable session
