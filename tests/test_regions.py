"""Detection on model-size crops: the recall gained on the overhead clip and on a 4K view made
of it, and the merging of what overlapping crops saw."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.cameras import camera
from bench.clips import frames_of, h264
from tests.vision_media import MEDIA, YOLO, require_media
from vision.detector import Detections, Detector
from vision.pipeline import Analyser, Models
from vision.regions import around, merge, tiles, whole, zoom_side

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

HAND_COUNTED = 45  # people on the overhead clip's first frame (bench/expected_events.toml)


@pytest.fixture(scope="module")
def detector() -> Detector:
    require_media()
    return Detector(YOLO)


def first_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(MEDIA / "pedestrians_overhead.avi"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def people(detector: Detector, image: np.ndarray, rects: list[tuple[int, int, int, int]]) -> int:
    crops = [np.ascontiguousarray(image[y1:y2, x1:x2]) for x1, y1, x2, y2 in rects]
    height, width = image.shape[:2]
    found = merge(list(zip(rects, detector.detect(crops), strict=True)), width, height)
    return int((found.cls == 0).sum())


def test_tiles_find_the_small_people_the_whole_frame_misses(detector: Detector) -> None:
    frame = first_frame()
    height, width = frame.shape[:2]
    full = people(detector, frame, whole(width, height))
    tiled = people(detector, frame, tiles(width, height, 640, 0.2))
    assert tiled >= 0.85 * HAND_COUNTED and tiled <= 1.1 * HAND_COUNTED, tiled
    assert tiled >= 1.2 * full, (full, tiled)
    view = np.tile(frame, (3, 3, 1))  # 3840x2160 with people the same size: a 4K camera
    full_4k = people(detector, view, whole(*view.shape[1::-1]))
    tiled_4k = people(detector, view, tiles(view.shape[1], view.shape[0], 640, 0.2))
    assert tiled_4k >= 0.85 * 9 * HAND_COUNTED, tiled_4k
    assert tiled_4k >= 3 * full_4k, (full_4k, tiled_4k)


def test_what_two_crops_both_saw_is_one_detection() -> None:
    # A person at x 600..680 of the frame: cut by the right border of the crop at 0..640,
    # whole in the crop at 512..1152.
    cut_box = Detections(np.array([[600, 100, 640, 300]], np.float32),
                         np.array([0.9], np.float32), np.array([0]))  # fmt: skip
    whole_box = Detections(np.array([[88, 100, 168, 300]], np.float32),
                           np.array([0.7], np.float32), np.array([0]))  # fmt: skip
    two_people = Detections(np.array([[10, 10, 60, 120], [30, 20, 80, 130]], np.float32),
                            np.array([0.8, 0.6], np.float32), np.array([0, 0]))  # fmt: skip
    merged = merge([((0, 0, 640, 640), cut_box), ((512, 0, 1152, 640), whole_box),
                    ((0, 0, 640, 640), Detections.empty())], 1280, 720)  # fmt: skip
    assert len(merged) == 1 and merged.conf[0] == pytest.approx(0.7), "the whole box wins"
    assert merged.xyxy[0].tolist() == [600, 100, 680, 300]
    kept = merge([((0, 0, 640, 640), two_people)], 1280, 720)
    assert len(kept) == 2, "within one crop the model's own suppression stands"


def test_regions_around_motion_are_model_size_and_merge_when_they_fit() -> None:
    regions = around([(100, 100, 140, 200), (180, 120, 220, 220), (3000, 1500, 3040, 1600)],
                     3840, 2160, 640)  # fmt: skip
    assert len(regions) == 2
    for x1, y1, x2, y2 in regions:
        assert x2 - x1 == 640 and y2 - y1 == 640
        assert x1 >= 0 and x2 <= 3840 and y1 >= 0 and y2 <= 2160
    assert tiles(1920, 1080, 640, 0.2)[-1][2:] == (1920, 1080)


def test_tiles_are_sized_to_show_small_people_large_enough() -> None:
    # The overhead clip's people, 86 px tall in 1280x720 (43 in the model's view of the whole
    # frame): tiles of 625 px would do; 720 (the frame's height) needs two, not six. The same
    # view at 640x360: the same two tiles, each enlarged. A 1080p crowd of people 60 px tall:
    # tiles of 436, enlarged. People 200 px tall in 1080p, or a view with none: no tiles.
    assert zoom_side([86.0] * 30, 1280, 720, 640) == 720
    assert zoom_side([43.0] * 30, 640, 360, 640) == 360
    assert zoom_side([60.0] * 30, 1920, 1080, 640) == 436
    assert zoom_side([200.0] * 30, 1920, 1080, 640) is None
    assert zoom_side([], 640, 360, 640) is None


def test_a_camera_over_small_people_counts_them_from_its_first_frame(
    detector: Detector, tmp_path: Path
) -> None:
    """The overhead view at 1280x720 and shrunk to 640x360 (it then fits the model's input
    and was searched whole): nothing set by hand, the people are counted within a fifth of
    the hand count on the first frame analysed."""
    frames = frames_of(MEDIA / "pedestrians_overhead.avi", 10)
    small = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames]
    for clip in (h264(frames, tmp_path / "large.mp4"), h264(small, tmp_path / "small.mp4")):
        engine = Analyser(Models(detector))
        pipeline = engine.add(camera("C", f"file://{clip}?realtime=0", fps=1.0))
        engine.step()
        seen = [t for t in pipeline.tracks if t.visible and t.label == "person"]
        engine.close()
        assert abs(len(seen) - HAND_COUNTED) <= 0.2 * HAND_COUNTED, (clip.name, len(seen))
