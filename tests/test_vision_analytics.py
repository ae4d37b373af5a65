"""The vision engine on real clips and real weights: four cameras batched through one engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision_media import (
    FIRE,
    MEDIA,
    OFF_WALKWAY,
    POSE,
    WALKWAY,
    YOLO,
    camera,
    replay,
    require_media,
    still_clip,
)
from vision.analytics.tamper import Tamper
from vision.capture import open_source
from vision.detector import Detector
from vision.events import Event
from vision.pipeline import Analyser, CameraCounters, Gating, Models
from vision.shrink import shrink

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md


@dataclass
class Run:
    events: dict[str, list[Event]]
    pictures: dict[str, list[bytes]]
    counters: dict[str, CameraCounters]
    line_counts: dict[str, dict[str, dict[str, int]]]
    batch_sizes: list[int]
    stages: dict[str, float]


@pytest.fixture(scope="module")
def models() -> Models:
    require_media()
    return Models(Detector(YOLO), Detector(FIRE), Detector(POSE, task="pose"))


@pytest.fixture(scope="module")
def run(models: Models) -> Run:
    """Every clip once, all cameras stepped together so frames share inference batches."""
    engine = Analyser(models)
    engine.add(camera("CROSS", replay("pedestrians_crosswalk.mp4"), zones=[
        {"name": "walkway", "kind": "restricted", "polygon": WALKWAY},
        {"name": "rooftops", "kind": "restricted", "polygon": OFF_WALKWAY},
        {"name": "tripwire", "kind": "line", "polygon": [[0.0, 0.75], [1.0, 0.75]],
         "params": {"forward": "south", "backward": "north"}},
    ]))  # fmt: skip
    engine.add(camera("PLAZA", replay("pedestrians_overhead.avi"), zones=[
        {"name": "plaza", "kind": "crowd", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
         "params": {"min_persons": 10, "for": 2}},
    ]))  # fmt: skip
    engine.add(camera("GARAGE", replay("fire_smoke_cctv.mp4"), fps=2))
    engine.add(camera("OFFICE", replay("fall_indoor.mp4"), fps=5))
    found = Run({c: [] for c in engine.pipelines}, {c: [] for c in engine.pipelines}, {}, {}, [],
                engine.clock.seconds)  # fmt: skip
    while not engine.finished:
        frames, outcomes = engine.step()
        found.batch_sizes.append(frames)
        for outcome in outcomes:
            found.events[outcome.camera_id].append(outcome.event)
            if outcome.picture:
                found.pictures[outcome.camera_id].append(outcome.picture.jpeg)
    for camera_id, pipeline in engine.pipelines.items():
        found.counters[camera_id] = pipeline.counters
        found.line_counts[camera_id] = pipeline.line_counts
    engine.close()
    return found


def types(run: Run, camera_id: str) -> list[str]:
    return [e.type for e in run.events[camera_id]]


def test_frames_of_several_cameras_share_inference_batches(run: Run) -> None:
    assert max(run.batch_sizes) == 4


def test_the_engine_accounts_its_cpu_by_stage(run: Run) -> None:
    assert list(run.stages) == ["decode", "motion", "detect", "track", "analytics", "evidence"]
    assert all(seconds > 0 for seconds in run.stages.values()), run.stages


def test_intrusion_on_the_walkway_with_snapshots_and_none_off_it(run: Run) -> None:
    intrusions = [e for e in run.events["CROSS"] if e.type == "intrusion"]
    assert len(intrusions) >= 5
    assert {e.zone for e in intrusions} == {"walkway"}
    track_ids = [e.track_id for e in intrusions]
    assert len(track_ids) == len(set(track_ids)), "one event per track and zone episode"
    picture = cv2.imdecode(np.frombuffer(run.pictures["CROSS"][0], np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[:2] == (360, 640)


def test_line_crossings_go_the_way_the_crowd_walks(run: Run) -> None:
    """Everyone on the crosswalk clip walks down the frame (bench/expected_events.toml)."""
    counts = run.line_counts["CROSS"]["tripwire"]
    crossings = [e for e in run.events["CROSS"] if e.type == "line_crossing"]
    assert counts["south"] >= 1 and counts["north"] == 0
    assert len(crossings) == counts["south"]
    assert {e.direction for e in crossings} == {"south"}


def test_crowd_on_the_overhead_clip(run: Run) -> None:
    crowds = [e for e in run.events["PLAZA"] if e.type == "crowd"]
    assert len(crowds) == 1, "one event per crowd episode"
    assert crowds[0].count is not None and crowds[0].count >= 10


def test_smoke_on_the_fire_clip_and_none_on_pedestrians(run: Run) -> None:
    assert "smoke" in types(run, "GARAGE")
    for camera_id in ("CROSS", "PLAZA", "OFFICE"):
        assert not {"smoke", "fire"} & set(types(run, camera_id)), camera_id


def test_fall_on_the_indoor_clip_and_none_on_the_crosswalk(run: Run) -> None:
    falls = [e for e in run.events["OFFICE"] if e.type == "fall"]
    assert len(falls) == 1
    assert "fall" not in types(run, "CROSS")


def test_motion_gating_skips_a_still_scene(models: Models, tmp_path: Path) -> None:
    engine = Analyser(Models(models.detector), Gating(refresh_s=5.0))
    pipeline = engine.add(
        camera("STILL", f"file://{still_clip(tmp_path, 'still.avi')}?realtime=0", fps=5)
    )
    while not engine.finished:
        engine.step()
    counters = pipeline.counters
    assert counters.analysed == 30
    assert counters.detected <= 3  # the first frame, then one refresh every 5 s
    assert counters.skipped == counters.analysed - counters.detected


@pytest.fixture
def short_clip(tmp_path: Path) -> Iterator[Path]:
    require_media()
    cap = cv2.VideoCapture(str(MEDIA / "fall_indoor.mp4"))
    path = tmp_path / "short.avi"
    writer = None
    for _ in range(12):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 12,
                                     frame.shape[1::-1])  # fmt: skip
        writer.write(frame)
    assert writer is not None
    writer.release()
    cap.release()
    yield path


def test_a_stream_that_dies_and_comes_back(short_clip: Path) -> None:
    source = open_source(f"file://{short_clip}?loop=1", fps=5)
    try:
        _wait(lambda: source.state == "live")
        hidden = short_clip.with_suffix(".gone")
        short_clip.rename(hidden)  # the camera disappears: the loop cannot reopen it
        _wait(lambda: source.state == "lost")
        hidden.rename(short_clip)
        _wait(lambda: source.state == "live", timeout=10)
        time.sleep(0.2)
        changes = [c.type for c in source.changes()]
        assert changes == ["stream_lost", "stream_restored"]
        assert source.counters.reconnects >= 1
    finally:
        source.close()


def test_an_unreachable_stream_is_reported_lost_not_raised() -> None:
    source = open_source("rtsp://127.0.0.1:9/nothing", fps=2)
    try:
        _wait(lambda: source.state == "lost", timeout=15)
        lost = source.changes()
        assert [c.type for c in lost] == ["stream_lost"] and lost[0].reason
    finally:
        source.close()


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_tamper_from_image_statistics_on_real_frames() -> None:
    require_media()
    cap = cv2.VideoCapture(str(MEDIA / "pedestrians_crosswalk.mp4"))
    frames: list[np.ndarray] = []
    while len(frames) < 40:
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    cap.release()

    def judge(spoil: Callable[[np.ndarray], np.ndarray]) -> list[str | None]:
        tamper = Tamper()
        found = []
        for i, frame in enumerate(frames):
            image = spoil(frame) if i >= 16 else frame
            found += [e.reason for e in tamper.update(i * 0.25, image)]
        return found

    assert judge(lambda f: f) == []
    assert judge(lambda f: np.full_like(f, 30)) == ["covered"]
    assert judge(lambda f: cv2.GaussianBlur(f, (0, 0), 8)) == ["defocused"]


def test_tamper_follows_dusk_and_catches_a_camera_moved_or_rotated() -> None:
    """The fall clip's camera stands still: darkened to a sixth (dusk), shifted by an eighth of
    its width, turned by 8 degrees."""
    require_media()
    cap = cv2.VideoCapture(str(MEDIA / "fall_indoor.mp4"))
    frames: list[np.ndarray] = []
    index = 0
    while len(frames) < 40:
        ok, frame = cap.read()
        assert ok
        if index % 5 == 0:
            frames.append(frame)
        index += 1
    cap.release()
    height, width = frames[0].shape[:2]

    def judge(spoil: Callable[[np.ndarray, int], np.ndarray]) -> list[str | None]:
        tamper = Tamper()
        found = []
        for i, frame in enumerate(frames):
            image = spoil(frame, i - 12) if i >= 12 else frame
            found += [e.reason for e in tamper.update(i * 0.5, image)]
        return found

    def dusk(frame: np.ndarray, n: int) -> np.ndarray:
        light = max(0.15, 1 - n * 0.06)
        noise = np.random.default_rng(n).normal(0, 3, frame.shape)
        return np.clip(frame * light + noise, 0, 255).astype(np.uint8)

    shifted = np.float32([[1, 0, -0.12 * width], [0, 1, 0]])
    turned = cv2.getRotationMatrix2D((width / 2, height / 2), 8, 1.0)
    assert judge(dusk) == []
    for move in (shifted, turned):
        assert judge(lambda f, _, m=move: cv2.warpAffine(f, m, (width, height),
                                                         borderMode=cv2.BORDER_REFLECT)) == [
            "moved"
        ]  # fmt: skip


def test_a_thumbnail_is_area_averaged_however_it_is_made() -> None:
    """Real 1080p and 4K frames: the quick shrink is INTER_AREA's thumbnail within half a grey
    level on average; a frame already small is shrunk by INTER_AREA itself."""
    require_media()
    cap = cv2.VideoCapture(str(MEDIA / "pedestrians_overhead.avi"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    for width, height in ((1920, 1080), (3840, 2160)):
        large = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        exact = cv2.resize(large, (213, 120), interpolation=cv2.INTER_AREA).astype(float)
        assert np.abs(shrink(large, (213, 120)).astype(float) - exact).mean() < 0.5
    small = cv2.resize(frame, (320, 180))
    exact_small = cv2.resize(small, (213, 120), interpolation=cv2.INTER_AREA)
    assert np.array_equal(shrink(small, (213, 120)), exact_small)
