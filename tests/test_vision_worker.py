"""Vision workers end to end: real processes share cameras by lease, publish over real MQTT
into ingest, and the evidence they store is served by the API to the right roles only."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from hub.secret import hmac_key
from hub.settings import MqttUrl, Settings
from tests.conftest import TokenFactory
from tests.hub_processes import HubProcess, hub_env
from tests.ingest_helpers import Publisher, running_consumer, wait_for
from tests.test_ingest_pipeline import Harness
from tests.vision_media import MEDIA, WALKWAY, YOLO, require_media

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

AREA = "440311001002"


def _url(broker: MqttUrl) -> str:
    auth = f"{broker.username}:{broker.password}@" if broker.username else ""
    return f"mqtt://{auth}{broker.host}:{broker.port}"


@pytest.fixture
def cameras(admin: httpx.Client) -> httpx.Client:
    require_media()
    admin.post("/api/v1/areas", json={"code": AREA, "name": "楼村社区"}).raise_for_status()
    for camera_id, clip, zones in (
        ("CAM-CROSS", "pedestrians_crosswalk.mp4",
         [{"name": "walkway", "kind": "restricted", "polygon": WALKWAY}]),
        ("CAM-PLAZA", "pedestrians_overhead.avi", []),
    ):  # fmt: skip
        response = admin.post("/api/v1/cameras", json={
            "id": camera_id, "area": AREA, "building": "B1", "fps": 3, "zones": zones,
            "stream_url": f"file://{(MEDIA / clip).resolve()}?loop=1",
        })  # fmt: skip
        assert response.status_code == 201, response.text
    return admin


@pytest.fixture
def pool(settings: Settings, mqtt_server: MqttUrl, cameras: httpx.Client) -> Iterator[object]:
    from vision.processes import WorkerPool

    worker_settings = settings.model_copy(
        update={
            "mqtt_url": _url(mqtt_server),
            "yolo_model": YOLO,
            "fire_model": None,
            "pose_model": None,
            "vision_lease_s": 3.0,
        }
    )
    workers = WorkerPool(worker_settings, 2)
    workers.start()
    yield workers
    workers.stop()
    clear_retained_status(mqtt_server, ["CAM-CROSS", "CAM-PLAZA"])


def clear_retained_status(broker: MqttUrl, cameras: list[str]) -> None:
    """Workers leave each camera's status retained; a shared broker must not hand it to the
    next test's subscribers (they do not know these cameras)."""
    publisher = Publisher(broker)
    for camera_id in cameras:
        publisher.send(f"sb/{AREA}/{camera_id}/status", b"", retain=True)  # empty clears it
    publisher.close()


def vision_hub(database_url: str, broker: MqttUrl, tmp_path: Path, workers: int, model: str,
               **env: str) -> HubProcess:  # fmt: skip
    """`shaobing vision --workers N` in a process of its own, offline, with a 3 s lease."""
    settings = hub_env(SB_DATABASE_URL=database_url, SB_MQTT_URL=_url(broker),
                       SB_YOLO_MODEL=model, SB_VISION_LEASE_S="3",
                       SB_DATA_DIR=str(tmp_path / "data"), YOLO_OFFLINE="1", **env)  # fmt: skip
    return HubProcess("vision", ["vision", "--workers", str(workers)], settings,
                      tmp_path).start()  # fmt: skip


def holders(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT camera_id, worker_id FROM camera_leases WHERE expires_at > now()"
        ).fetchall()
    return {camera: worker for camera, worker in rows}


def test_two_workers_share_cameras_publish_events_and_survive_a_kill(
    pool: object,
    cameras: httpx.Client,
    database_url: str,
    mqtt_server: MqttUrl,
    client_for: TokenFactory,
) -> None:
    from vision.processes import WorkerPool

    assert isinstance(pool, WorkerPool)
    with running_consumer(database_url, mqtt_server) as collected:
        # Each worker holds one camera: the fair share of two cameras between two workers.
        wait_for(database_url, "SELECT count(DISTINCT worker_id) FROM camera_leases"
                 " WHERE expires_at > now()", lambda n: n == 2, timeout=90)  # fmt: skip
        wait_for(database_url, "SELECT count(*) FROM signals WHERE kind = 'intrusion'",
                 lambda n: n >= 1, timeout=60)  # fmt: skip
        assert "intrusion" in collected.kinds()

        # Kill the worker holding the crosswalk camera outright: its lease lapses, the other
        # worker takes the camera over.
        before = holders(database_url)
        victim = next(
            p for p in pool.processes
            if p is not None and p.pid is not None and str(p.pid) in before["CAM-CROSS"]
        )  # fmt: skip
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        survivor = before["CAM-PLAZA"]
        wait_for(database_url, "SELECT count(*) FROM camera_leases WHERE expires_at > now()"
                 f" AND worker_id = '{survivor}'", lambda n: n == 2, timeout=30)  # fmt: skip

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT attrs->>'evidence', source_id, area FROM signals WHERE kind = 'intrusion'"
            " ORDER BY ts LIMIT 1"
        ).fetchone()
    assert row is not None
    evidence_id, source, area = row
    assert (source, area) == ("CAM-CROSS", AREA)

    picture = cameras.get(f"/api/v1/evidence/{evidence_id}")
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/jpeg"
    assert picture.content[:3] == b"\xff\xd8\xff"
    listed = cameras.get("/api/v1/evidence", params={"camera_id": "CAM-CROSS"}).json()["items"]
    assert evidence_id in {item["id"] for item in listed}

    with client_for("dispatcher", AREA) as dispatcher:
        assert dispatcher.get(f"/api/v1/evidence/{evidence_id}").status_code == 200
    with client_for("viewer", AREA) as viewer:
        assert viewer.get(f"/api/v1/evidence/{evidence_id}").status_code == 403
    with client_for("dispatcher", "440311001003") as elsewhere:
        assert elsewhere.get(f"/api/v1/evidence/{evidence_id}").status_code == 404
    assert cameras.get("/api/v1/evidence/" + "0" * 32).status_code == 404
    assert cameras.get("/api/v1/evidence/../../etc/passwd").status_code == 404

    wait_for(database_url, "SELECT count(*) FROM camera_stats WHERE camera_id = 'CAM-CROSS'"
             " AND process_fps > 0", lambda n: n == 1, timeout=20)  # fmt: skip
    stats = cameras.get("/api/v1/cameras/CAM-CROSS/stats").json()
    assert stats["stream"] == "live" and stats["process_fps"] > 0 and stats["frames_read"] > 0
    # Decoding the stream is a camera's largest cost before any analysis: it is measured.
    assert 0 < stats["decode_cpu"] < 2 and 0 < stats["decode_ms_per_frame"] < 1000
    assert stats["decoder"] in ("cpu", "cuda") and stats["frames_undecoded"] >= 0
    metrics = cameras.get("/metrics").text
    assert 'sb_camera_frames{camera="CAM-CROSS",outcome="undecoded"}' in metrics
    assert 'sb_camera_fps{camera="CAM-CROSS",stage="process"}' in metrics
    assert 'sb_camera_decode_cpu{camera="CAM-CROSS"}' in metrics


def test_bad_zone_params_are_refused_at_registration(admin: httpx.Client) -> None:
    admin.post("/api/v1/areas", json={"code": AREA, "name": "楼村社区"})
    response = admin.post("/api/v1/cameras", json={
        "id": "CAM-BAD", "area": AREA, "stream_url": "rtsp://10.0.0.9/live",
        "zones": [{"name": "z", "kind": "crowd", "polygon": [[0, 0], [1, 0], [1, 1]],
                   "params": {"min_persons": 1}}],
    })  # fmt: skip
    assert response.status_code == 422
    assert "min_persons" in response.text
    response = admin.post("/api/v1/cameras", json={
        "id": "CAM-BAD", "area": AREA, "stream_url": "rtsp://10.0.0.9/live",
        "zones": [{"name": "z", "kind": "restricted", "polygon": [[0, 0], [1.2, 0], [1, 1]]}],
    })  # fmt: skip
    assert response.status_code == 422


def test_models_load_only_for_a_camera_and_a_missing_model_is_said_once(
    admin: httpx.Client, database_url: str, mqtt_server: MqttUrl, tmp_path: Path
) -> None:
    """Offline with a model that cannot be had: no camera, no attempt; a camera, one clear
    error, and the worker stays up holding nothing instead of crash-looping."""
    require_media()
    hub = vision_hub(database_url, mqtt_server, tmp_path, 1, str(tmp_path / "missing.pt"))
    try:
        # Not ready, and it says why (the contract of issue 32: vision off is not `up`).
        body = hub.wait_for(lambda status: status == 503, 60, "said vision is off")
        assert "missing.pt does not exist" in body["components"]["vision"]["reason"]
        time.sleep(4)  # several lease heartbeats with no camera
        assert "could not be loaded" not in hub.log()

        admin.post("/api/v1/areas", json={"code": AREA, "name": "楼村社区"}).raise_for_status()
        response = admin.post("/api/v1/cameras", json={
            "id": "CAM-LAZY", "area": AREA, "building": "B1", "fps": 3,
            "stream_url": f"file://{(MEDIA / 'pedestrians_overhead.avi').resolve()}?loop=1",
        })  # fmt: skip
        assert response.status_code == 201, response.text
        deadline = time.monotonic() + 30
        while "could not be loaded" not in hub.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(6)  # what a crash loop would fill with restarts and repeats
        log = hub.log()
        assert log.count("could not be loaded") == 1, log
        assert "missing.pt" in log and "SB_YOLO_MODEL" in log
        assert "restarting" not in log
        assert hub.process is not None and hub.process.poll() is None
        assert holders(database_url) == {}
        metrics = httpx.get(f"http://127.0.0.1:{hub.http_port + 1}/metrics", timeout=5).text
        assert "sb_vision_models_ready 0.0" in metrics
    finally:
        hub.stop()


def test_workers_fed_by_one_inference_process_which_may_be_killed(
    cameras: httpx.Client, database_url: str, mqtt_server: MqttUrl, tmp_path: Path
) -> None:
    """`shaobing vision` with SB_VISION_INFERENCE_SERVER: two workers analyse through the one
    process that holds the models; SIGKILLed, it is restarted and the cameras go on."""
    hub = vision_hub(database_url, mqtt_server, tmp_path, 2, YOLO,
                     SB_VISION_INFERENCE_SERVER="1")  # fmt: skip
    analysed = ("SELECT count(*) FROM camera_stats WHERE detection_fps > 0"
                " AND updated_at > now() - interval '4 seconds'")  # fmt: skip
    try:
        hub.wait_ready()
        wait_for(database_url, "SELECT count(DISTINCT worker_id) FROM camera_leases"
                 " WHERE expires_at > now()", lambda n: n == 2, timeout=90)  # fmt: skip
        wait_for(database_url, analysed, lambda n: n == 2, timeout=60)
        [server] = servers_started(hub)
        assert "served at" in hub.log_path.read_text()
        os.kill(server, signal.SIGKILL)
        deadline = time.monotonic() + 40
        while len(servers_started(hub)) < 2:
            assert time.monotonic() < deadline, hub.log()
            time.sleep(0.2)
        time.sleep(5)  # figures saved before the restart have aged out of `analysed`
        wait_for(database_url, analysed, lambda n: n == 2, timeout=60)
        assert hub.process is not None and hub.process.poll() is None
    finally:
        hub.stop()
        clear_retained_status(mqtt_server, ["CAM-CROSS", "CAM-PLAZA"])


def test_an_inference_process_without_its_models_says_so_once_and_stays_up(
    database_url: str, mqtt_server: MqttUrl, tmp_path: Path
) -> None:
    hub = vision_hub(database_url, mqtt_server, tmp_path, 1, str(tmp_path / "missing.pt"),
                     SB_VISION_INFERENCE_SERVER="1")  # fmt: skip
    try:
        body = hub.wait_for(lambda status: status == 503, 60, "said vision is off")
        assert "missing.pt does not exist" in body["components"]["vision"]["reason"]
        deadline = time.monotonic() + 30
        while "cannot load its models" not in hub.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(6)  # what a crash loop would fill with restarts
        log = hub.log_path.read_text()
        assert log.count("cannot load its models") == 1, log
        assert "missing.pt" in log and "restarting" not in log
        assert hub.process is not None and hub.process.poll() is None
    finally:
        hub.stop()


def servers_started(hub: HubProcess) -> list[int]:
    """The pids of the inference processes the hub has started, from its JSON log."""
    lines = hub.log_path.read_text(errors="replace").splitlines()
    return [entry["pid"] for line in lines if line.startswith("{")
            if (entry := json.loads(line)).get("event") == "inference server listening"]  # fmt: skip


def test_without_its_model_vision_says_it_is_off_and_no_camera_is_called_offline(
    admin: httpx.Client, api_url: str, database_url: str, mqtt_server: MqttUrl,
    settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    """SB_YOLO_MODEL names a file that is not there: /readyz of the vision process, the
    API's /readyz and /vision, and the camera's stats say vision is off and why; device
    health calls no camera offline for it, while the same sweep reports a silent sensor."""
    missing = tmp_path / "models" / "yolo.pt"
    hub = vision_hub(database_url, mqtt_server, tmp_path, 1, str(missing))
    try:
        body = hub.wait_for(lambda status: status == 503, 60, "said vision is off")
        vision = body["components"]["vision"]
        assert not vision["up"] and f"SB_YOLO_MODEL {missing} does not exist" in vision["reason"]
        admin.post("/api/v1/areas", json={"code": AREA, "name": "楼村社区"}).raise_for_status()
        admin.post("/api/v1/cameras", json={
            "id": "CAM-OFF", "area": AREA, "building": "B1",
            "stream_url": "rtsp://192.0.2.10/stream"}).raise_for_status()  # fmt: skip
        admin.post("/api/v1/devices", json={"id": "SD-OFF", "type": "smoke_sensor",
                                            "area": AREA}).raise_for_status()  # fmt: skip
        deadline = time.monotonic() + 30
        while (said := admin.get("/api/v1/vision").json())["workers"] == 0:  # still starting
            assert time.monotonic() < deadline, said
            time.sleep(0.2)
        assert (said["state"], said["workers"]) == ("off", 1) and str(missing) in said["reason"]
        ready = httpx.get(f"{api_url}/readyz")
        assert ready.status_code == 200 and ready.json()["vision"] == said  # the API serves
        stats = admin.get("/api/v1/cameras/CAM-OFF/stats").json()
        assert stats["stream"] == "not_analysed"
        assert stats["reason"].startswith("vision is off: ") and str(missing) in stats["reason"]

        harness = Harness(database_url, hmac_key(settings))
        later = datetime.now(UTC) + timedelta(hours=26)  # past every heartbeat
        assert harness.sweep(later) == ["device_offline:never_connected"]
        assert [s.source_id for s in harness.signals] == ["SD-OFF"]
    finally:
        hub.stop()
    # A camera a worker with its models holds is judged as before: silent, it is offline.
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO vision_workers (id, host, pid) VALUES ('w-models', 'h', 1)")
        conn.execute("INSERT INTO camera_leases (camera_id, worker_id, claimed_at, expires_at)"
                     " VALUES ('CAM-OFF', 'w-models', now() - interval '1 hour',"
                     " now() + interval '1 hour')")  # fmt: skip
    assert harness.sweep(later) == ["device_offline:never_connected"]
    assert harness.signals[-1].source_id == "CAM-OFF"


def test_a_model_that_fails_to_load_turns_vision_off_with_its_error(
    admin: httpx.Client, database_url: str, mqtt_server: MqttUrl, tmp_path: Path
) -> None:
    """A model file that is there but is no model: ready while no camera needs it; once one
    does, the load fails and the process, the API and the camera's stats say so."""
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    hub = vision_hub(database_url, mqtt_server, tmp_path, 1, str(bad))
    try:
        hub.wait_ready()
        admin.post("/api/v1/areas", json={"code": AREA, "name": "楼村社区"}).raise_for_status()
        admin.post("/api/v1/cameras", json={
            "id": "CAM-BAD", "area": AREA, "stream_url": "rtsp://192.0.2.11/stream",
        }).raise_for_status()  # fmt: skip
        body = hub.wait_for(lambda status: status == 503, 60, "said its models failed")
        reason = body["components"]["vision"]["reason"]
        assert "could not be loaded" in reason and "bad.pt" in reason, reason
        said = admin.get("/api/v1/vision").json()
        assert said["state"] == "off" and "could not be loaded" in said["reason"], said
        stats = admin.get("/api/v1/cameras/CAM-BAD/stats").json()
        assert stats["stream"] == "not_analysed" and "could not be loaded" in stats["reason"]
    finally:
        hub.stop()
