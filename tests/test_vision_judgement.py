"""Fire, smoke and falls judged on detections and pose results laid out by hand: flames that
must be reported within 2 s at 1 and 2 fps, grey textures the fire model takes for smoke,
falls seen from the side, from the floor and from above, a pose model that drops out."""

from __future__ import annotations

import numpy as np
import pytest

from vision.analytics.fire import FireSmoke
from vision.detector import Detections

NAMES = {0: "fire", 1: "smoke"}
SHAPE = (720, 1280)


def found(label: int, box: tuple[float, float, float, float], score: float) -> Detections:
    if score == 0.0:
        return Detections.empty()
    height, width = SHAPE
    xyxy = np.array([box], np.float32) * np.array([width, height, width, height], np.float32)
    return Detections(xyxy, np.array([score], np.float32), np.array([label]))


def grey(level: int = 110) -> np.ndarray:
    return np.full((*SHAPE, 3), level, np.uint8)


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_flames_are_reported_within_two_seconds(fps: float) -> None:
    """The fire model scores flames 0.52-0.78 from 3 s on; before that nothing."""
    fire = FireSmoke(NAMES)
    rng = np.random.default_rng(1)
    events = []
    for n in range(int(10 * fps)):
        ts = n / fps
        score = float(rng.uniform(0.52, 0.78)) if ts >= 3.0 else 0.0
        events += fire.update(ts, found(0, (0.4, 0.5, 0.6, 0.8), score), SHAPE, grey())
    assert [e.type for e in events] == ["fire"]
    assert 3.0 <= events[0].ts <= 5.0
    assert 0.52 <= events[0].confidence <= 0.78


def test_the_fire_model_runs_every_frame_while_a_candidate_is_in_view() -> None:
    fire = FireSmoke(NAMES)
    assert fire.due(0.0)
    fire.update(0.0, Detections.empty(), SHAPE, grey())
    assert not fire.due(0.5), "nothing seen: at most once a second"
    fire.update(1.0, found(0, (0.4, 0.5, 0.6, 0.8), 0.35), SHAPE, grey())
    assert fire.due(1.5) and fire.candidate(1.5)
    assert not fire.candidate(10.0)


def test_one_high_score_among_misses_is_not_fire() -> None:
    fire = FireSmoke(NAMES)
    scores = [0.0, 0.9, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0]
    events = [e for n, s in enumerate(scores)
              for e in fire.update(float(n), found(0, (0.1, 0.1, 0.3, 0.3), s), SHAPE, grey())]  # fmt: skip
    assert events == []


def test_a_still_grey_texture_is_not_smoke_however_sure_the_model_is() -> None:
    """A grey floor filling most of the view, scored 0.6-0.8 on every run for 20 s, the
    camera's noise on it: no smoke. Fog over the whole view, same."""
    rng = np.random.default_rng(2)
    floor = rng.integers(90, 140, (*SHAPE, 3), np.uint8)
    for box in [(0.0, 0.3, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0)]:
        smoke = FireSmoke(NAMES)
        events = []
        for n in range(40):
            noisy = np.clip(floor.astype(np.int16) + rng.integers(-6, 7, floor.shape), 0, 255)
            image = noisy.astype(np.uint8)
            jitter = rng.uniform(-0.01, 0.01)
            moved = (box[0], box[1] + jitter, box[2], box[3])
            events += smoke.update(n * 0.5, found(1, moved, float(rng.uniform(0.6, 0.8))),
                                   SHAPE, image)  # fmt: skip
        assert events == [], box


def test_people_crossing_a_grey_floor_do_not_make_it_smoke() -> None:
    """Everything changes alike inside and outside the box the model calls smoke."""
    rng = np.random.default_rng(3)
    smoke = FireSmoke(NAMES)
    events = []
    for n in range(20):
        image = grey(120)
        for _ in range(60):  # small people all over the view, somewhere else each frame
            x, y = int(rng.integers(0, 1260)), int(rng.integers(0, 680))
            image[y : y + 40, x : x + 16] = rng.integers(0, 255, 3, np.uint8)
        events += smoke.update(n * 0.5, found(1, (0.0, 0.5, 0.6, 1.0), 0.7), SHAPE, image)
    assert events == []


def test_a_growing_plume_is_smoke_within_its_window() -> None:
    smoke = FireSmoke(NAMES)
    events = []
    for n in range(8):
        ts = n * 1.0
        image = grey(100)
        height, width = SHAPE
        top = int(height * (0.6 - 0.08 * n))
        image[top : int(0.8 * height), int(0.3 * width) : int(0.6 * width)] = 170
        box = (0.3, top / height, 0.6, 0.8)
        events += smoke.update(ts, found(1, box, 0.55), SHAPE, image)
    assert [(e.type, e.ts) for e in events] == [("smoke", 1.0)]
