"""Per-camera settings: typed and bounded at the API, and obeyed by the engine on real frames
and real weights: a motion mask over an on-screen clock lets motion gating rest, an object
mask drops what stands in it, analytics switched off do not run, the detector is paced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from devices.camera_settings import Mask
from tests.test_registry_api import COMMUNITY, assert_error, register_area
from tests.vision_media import (
    FIRE,
    POSE,
    WALKWAY,
    YOLO,
    camera,
    replay,
    require_media,
    still_clip,
)
from vision.capture import open_source
from vision.detector import Detections, Detector
from vision.masks import drop_masked
from vision.pipeline import Analyser, Gating, Models

CLOCK = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.12], [0.0, 0.12]]  # where the clock is drawn


@pytest.fixture(scope="module")
def models() -> Models:
    require_media()
    return Models(Detector(YOLO), Detector(FIRE), Detector(POSE, task="pose"))


def test_settings_are_typed_bounded_and_kept(admin: httpx.Client) -> None:
    register_area(admin)
    base = {"id": "CAM-S", "area": COMMUNITY, "stream_url": "rtsp://10.0.0.9/main"}
    settings = {"detect_fps": 1, "motion": {"threshold": 40, "masks": [{"polygon": CLOCK}]},
                "object_masks": [{"polygon": WALKWAY}],
                "analytics": {"fire": False, "fire_interval_s": 5}}  # fmt: skip
    created = admin.post("/api/v1/cameras", json={**base, "settings": settings})
    assert created.status_code == 201, created.text
    kept = admin.get("/api/v1/cameras/CAM-S").json()["settings"]
    assert kept["motion"]["threshold"] == 40 and kept["analytics"]["fire"] is False
    assert kept["analytics"]["falls"] is True and kept["motion"]["contour_area"] == 12  # defaults
    for wrong, where in (
        ({"detect_fps": 0}, "detect_fps"), ({"motion": {"threshold": 300}}, "threshold"),
        ({"motion": {"masks": [{"polygon": [[0, 0], [1, 1]]}]}}, "3 points"),
        ({"object_masks": [{"polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]}, "simple"),
        ({"analytics": {"fire_interval_s": 0.01}}, "fire_interval_s"),
        ({"analytics": {"firee": False}}, "firee"),
    ):  # fmt: skip
        refused = admin.patch("/api/v1/cameras/CAM-S", json={"settings": wrong})
        assert_error(refused, 422, "validation_error", where)
    replaced = admin.patch("/api/v1/cameras/CAM-S", json={"settings": {"detect_fps": 2}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["settings"]["motion"]["masks"] == []  # replaced as a whole


def test_an_object_mask_drops_what_stands_in_it() -> None:
    dets = Detections(
        np.array([[10, 10, 50, 90], [200, 100, 260, 190]], np.float32),  # feet at y 90 and 190
        np.array([0.9, 0.8], np.float32), np.array([0, 0]),
    )  # fmt: skip
    lower_half = Mask(polygon=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
    kept = drop_masked(dets, [lower_half], 200, 300)
    assert kept.xyxy.tolist() == [[10, 10, 50, 90]]
    assert len(drop_masked(dets, [], 200, 300)) == 2


def burn_clock(frame: np.ndarray, n: int) -> None:
    """A running clock at the top left, inside its black box, as NVRs draw it."""
    height, width = frame.shape[:2]
    text = f"2026-12-01 14:{n // 10:02d}:{n % 10}{n % 7}"
    scale = 1.0
    while cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)[0][0] > width * 0.45:
        scale *= 0.9
    cv2.rectangle(frame, (0, 0), (width // 2, height // 9), (0, 0, 0), -1)
    cv2.putText(frame, text, (5, height // 12), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 2)  # fmt: skip


def detected_frames(models: Models, url: str, **settings: Any) -> int:
    engine = Analyser(Models(models.detector), Gating(refresh_s=5.0))
    pipeline = engine.add(camera("CLOCK", url, fps=5, settings=settings))
    while not engine.finished:
        engine.step()
    engine.close()
    return pipeline.counters.detected


@pytest.mark.slow
def test_a_motion_mask_over_the_clock_lets_gating_rest(models: Models, tmp_path: Path) -> None:
    url = f"file://{still_clip(tmp_path, 'clock.avi', burn_clock)}?realtime=0"
    unmasked = detected_frames(models, url)
    masked = detected_frames(models, url, motion={"masks": [{"polygon": CLOCK}]})
    assert unmasked >= 20  # the ticking clock keeps the detector running
    assert masked <= 3  # the first frame, then one refresh every 5 s
    paced = detected_frames(models, url, detect_fps=1)
    assert 4 <= paced <= 7  # six seconds at one detection a second at most


def run_clip(models: Models, clip: str, fps: float, **settings: Any) -> list[str]:
    engine = Analyser(models)
    pipeline = engine.add(camera("CAM", replay(clip), fps=fps, settings=settings, zones=[
        {"name": "walkway", "kind": "restricted", "polygon": WALKWAY}]))  # fmt: skip
    found: list[str] = []
    while not engine.finished:
        found += [o.event.type for o in engine.step()[1]]
    assert pipeline.fire is None or settings.get("analytics", {}).get("fire", True)
    engine.close()
    return found


@pytest.mark.slow
def test_object_masks_and_switched_off_analytics(models: Models) -> None:
    assert "intrusion" in run_clip(models, "pedestrians_crosswalk.mp4", 2)
    masked = run_clip(models, "pedestrians_crosswalk.mp4", 2, object_masks=[{"polygon": WALKWAY}])
    assert "intrusion" not in masked  # whoever stands on the walkway is masked out
    assert {"fire", "smoke"} & set(run_clip(models, "fire_smoke_cctv.mp4", 2))
    off = {"analytics": {"fire": False, "falls": False, "tamper": False}}
    assert not {"fire", "smoke", "tamper"} & set(run_clip(models, "fire_smoke_cctv.mp4", 2, **off))


def test_decoding_is_measured_per_frame_read() -> None:
    """The reading thread's CPU in demuxing, decoding and converting: every frame decoded
    costs some."""
    require_media()
    source = open_source(replay("pedestrians_crosswalk.mp4"), 2)
    frames = [source.next_frame() for _ in range(10)]
    source.close()
    assert all(f is not None for f in frames)
    counters = source.counters
    assert counters.frames_read > len(frames)  # 10 s keyframes: frames between are decoded too
    assert 0 < counters.decode_s / counters.frames_read < 0.5


@pytest.mark.slow
def test_the_engine_reads_the_detect_substream(models: Models) -> None:
    """The main stream cannot be opened; the substream can: frames come from the substream."""
    engine = Analyser(Models(models.detector))
    pipeline = engine.add(camera("SUB", "rtsp://127.0.0.1:9/main", fps=2,
                                 detect_url=replay("fall_indoor.mp4")))  # fmt: skip
    try:
        frames, _ = engine.step()
        assert frames == 1 and pipeline.source.state == "live"
    finally:
        engine.close()
