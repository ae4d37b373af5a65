"""The clear cases of the hand-written truth (bench/expected_events.toml), analysed at 2 fps
with the shipped settings: the numbers bench/vision_quality.py prints for every analytic."""

from __future__ import annotations

import pytest

from bench.vision_quality import COUNT_TOLERANCE, ClipRun, count_at, expectations, run_clip
from tests.vision_media import FIRE, MEDIA, POSE, YOLO, require_media
from vision.detector import Detector
from vision.pipeline import Models

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

FPS = 2.0


@pytest.fixture(scope="module")
def runs() -> dict[str, ClipRun]:
    require_media()
    models = Models(Detector(YOLO), Detector(FIRE), Detector(POSE, task="pose"))
    return {name: run_clip(models, MEDIA, truth, FPS) for name, truth in expectations().items()}


def test_no_line_crossing_against_the_crowd_on_the_crosswalk(runs: dict[str, ClipRun]) -> None:
    truth = expectations()["crosswalk"].lines[0]
    crossings = [e for _, e in runs["crosswalk"].of("line_crossing")]
    assert [e for e in crossings if e.direction == truth.backward] == []
    assert len(crossings) <= truth.expected()[truth.forward][1]


def test_the_crowd_count_is_within_a_fifth_of_the_people_visible(
    runs: dict[str, ClipRun],
) -> None:
    truth = expectations()["overhead"].crowds[0]
    run = runs["overhead"]
    for at, people in truth.counts:
        seen = count_at(run.crowd_counts[truth.name], at)
        assert seen is not None and abs(seen - people) <= COUNT_TOLERANCE * people, (at, seen)
    episodes = [e for _, e in run.of("crowd")]
    assert len(episodes) == truth.episodes
    assert episodes[0].count is not None
    assert abs(episodes[0].count - truth.counts[0][1]) <= COUNT_TOLERANCE * truth.counts[0][1]


def test_the_fall_is_reported_within_a_second_and_a_half(runs: dict[str, ClipRun]) -> None:
    truth = expectations()["fall"]
    assert truth.fall_at is not None
    falls = [t for t, _ in runs["fall"].of("fall")]
    assert len(falls) == 1
    assert truth.fall_on_time(falls[0]), falls
    for name in ("crosswalk", "overhead", "fire"):
        assert runs[name].of("fall") == [], name


def test_smoke_or_fire_on_the_fire_clip_and_nowhere_else(runs: dict[str, ClipRun]) -> None:
    truth = expectations()["fire"]
    assert truth.fire_from is not None
    times = [t for t, _ in runs["fire"].of("fire", "smoke")]
    assert times and min(times) >= truth.fire_from - 1.0
    for name in ("crosswalk", "overhead", "fall"):
        assert runs[name].of("fire", "smoke") == [], name
