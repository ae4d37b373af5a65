"""Fire, smoke and falls judged on detections and pose results laid out by hand: flames that
must be reported within 2 s at 1 and 2 fps, grey textures the fire model takes for smoke,
falls seen from the side, from the floor and from above, a pose model that drops out."""

from __future__ import annotations

import numpy as np
import pytest

from vision.analytics.fall import Fall
from vision.analytics.fire import FireSmoke
from vision.detector import Detections
from vision.events import Event
from vision.tracking import Track

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
    assert [(e.type, e.ts) for e in events] == [("smoke", 2.0)], "its third run in view"


def desk_scene(n: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, ...]]:
    """A still room and a man at a desk who moves his head and arms each frame; the box he
    is tracked by, normalised."""
    image = grey(90)
    height, width = SHAPE
    x, y = int(0.35 * width + rng.integers(-20, 20)), int(0.2 * height + rng.integers(-15, 15))
    image[y : y + 400, x : x + 260] = rng.integers(40, 200, 3, np.uint8)
    return image, (x / width, y / height, (x + 260) / width, (y + 400) / height)


def test_someone_moving_where_the_model_sees_smoke_is_not_smoke() -> None:
    """The fire model takes a man at a desk (a grey jumper, vapour from an e-cigarette) for
    smoke, 0.5-0.7 on every run: what changes in its box is the man, whom the detector
    tracks, not a plume."""
    rng = np.random.default_rng(6)
    smoke = FireSmoke(NAMES)
    events = []
    for n in range(12):
        image, person = desk_scene(n, rng)
        dets = found(1, (0.25, 0.1, 0.6, 0.9), float(rng.uniform(0.5, 0.7)))
        events += smoke.update(n * 0.5, dets, SHAPE, image, [person])
    assert events == []


def test_a_plume_beside_someone_moving_is_still_smoke() -> None:
    """The same man at his desk, and a plume rising beside him: smoke on its third run."""
    rng = np.random.default_rng(7)
    smoke = FireSmoke(NAMES)
    events = []
    height, width = SHAPE
    for n in range(8):
        image, person = desk_scene(n, rng)
        top = int(height * (0.6 - 0.08 * n))
        image[top : int(0.8 * height), int(0.7 * width) : int(0.95 * width)] = 170
        box = (0.7, top / height, 0.95, 0.8)
        events += smoke.update(float(n), found(1, box, 0.55), SHAPE, image, [person])
    assert [(e.type, e.ts) for e in events] == [("smoke", 2.0)]


def pose_of(box: tuple[float, float, float, float], shoulders: tuple[float, float],
            hips: tuple[float, float], extra: list[tuple[float, float]] | None = None,
            ) -> Detections:  # fmt: skip
    """A pose result for one person in `box`, keypoints given as normalised (x, y)."""
    height, width = SHAPE
    keypoints = np.zeros((1, 17, 3), np.float32)
    for index, (x, y) in zip([5, 6], [shoulders, shoulders], strict=True):
        keypoints[0, index] = [x * width, y * height, 0.9]
    for index, (x, y) in zip([11, 12], [hips, hips], strict=True):
        keypoints[0, index] = [x * width, y * height, 0.9]
    for index, (x, y) in enumerate(extra or [], start=13):
        keypoints[0, index] = [x * width, y * height, 0.9]
    xyxy = np.array([box], np.float32) * np.array([width, height, width, height], np.float32)
    return Detections(xyxy, np.array([0.8], np.float32), np.array([0]), keypoints)


def person_track(box: tuple[float, float, float, float], ts: float, track_id: int = 1,
                 score: float = 0.7) -> Track:  # fmt: skip
    track = Track(track_id, "person", box, score, 0.0, ts)
    track.scores.append(score)
    return track


STANDING = (0.45, 0.3, 0.5, 0.7)  # 64 x 288 px


def run_fall(fps: float, fallen: tuple[float, float, float, float],
             pose: Detections | None, fall_at: float = 3.0, seconds: float = 8.0,
             dropouts: set[int] | None = None) -> list[Event]:  # fmt: skip
    """Someone stands until `fall_at`, then lies as `fallen` with the pose given."""
    fall = Fall()
    events = []
    for n in range(int(seconds * fps)):
        ts = n / fps
        box = STANDING if ts < fall_at else fallen
        track = person_track(box, ts)
        given = None if ts < fall_at or n in (dropouts or set()) else pose
        events += fall.update(ts, [track], given, SHAPE)
    return events


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_a_fall_seen_from_the_side_is_reported_on_its_first_frame_down(fps: float) -> None:
    fallen = (0.35, 0.62, 0.6, 0.72)  # wide, on the floor where the feet were
    pose = pose_of(fallen, shoulders=(0.38, 0.66), hips=(0.5, 0.67))
    events = run_fall(fps, fallen, pose)
    assert [e.ts for e in events] == [3.0]
    assert events[0].confidence == pytest.approx(0.7)


@pytest.mark.parametrize("fps", [1.0, 2.0])
def test_a_fall_along_the_cameras_axis_seen_from_above(fps: float) -> None:
    """The body lies towards the camera's far side: its box is no wider than it stood and
    its torso reads upright (shoulders above hips), but its head and hips dropped to the
    floor where the feet stood, the feet seen beyond them."""
    fallen = (0.45, 0.52, 0.5, 0.72)
    pose = pose_of(fallen, shoulders=(0.475, 0.56), hips=(0.475, 0.65), extra=LEGS_LYING)
    events = run_fall(fps, fallen, pose)
    assert len(events) == 1 and 3.0 <= events[0].ts <= 4.5
    assert events[0].confidence > 0


LEGS_LYING = [(0.47, 0.68), (0.48, 0.68), (0.47, 0.71), (0.48, 0.71)]  # knees, ankles


def test_a_walker_going_down_the_view_of_a_high_camera_is_not_a_fall() -> None:
    """Down a stair seen from above, someone walks down the view half a body height each
    frame, the box as wide as a body seen from above once moving: within a second the head
    is where the feet stood and the hips below it, upright all the while. Seen walking
    before, or seen once only before walking."""
    for upright_frames in (2, 1):
        fall = Fall()
        events = []
        for n in range(12):
            ts, y = n * 0.5, 0.1 + 0.1 * n
            width = 0.05 if n < upright_frames else 0.095  # 64 or 122 px for 144 px tall
            box = (0.45, y, 0.45 + width, y + 0.2)
            legs = [(0.46, y + 0.16), (0.49, y + 0.16), (0.46, y + 0.19), (0.49, y + 0.19)]
            pose = pose_of(box, shoulders=(0.475, y + 0.05), hips=(0.475, y + 0.11), extra=legs)
            events += fall.update(ts, [person_track(box, ts)], pose, SHAPE)
        assert events == [], upright_frames


def test_someone_in_a_crowd_with_the_legs_hidden_is_not_a_fall() -> None:
    """In a packed crowd the person in front hides the legs: the box ends at the waist, the
    pose puts the hips at its bottom where the feet stood, and no foot is seen."""
    hidden = (0.45, 0.48, 0.5, 0.7)
    pose = pose_of(hidden, shoulders=(0.475, 0.52), hips=(0.475, 0.68))
    assert run_fall(2.0, hidden, pose) == []


def test_a_track_handed_to_someone_smaller_is_not_a_fall() -> None:
    """A track that passes from one person to a smaller one further off: the box shrinks in
    height and width alike, keeping a standing person's shape, the hips low in the frame."""
    smaller = (0.46, 0.5, 0.485, 0.7)
    legs = [(0.47, 0.68), (0.48, 0.68), (0.47, 0.7), (0.48, 0.7)]
    pose = pose_of(smaller, shoulders=(0.472, 0.54), hips=(0.472, 0.66), extra=legs)
    assert run_fall(2.0, smaller, pose) == []


def test_a_track_that_went_further_than_its_height_from_where_it_stood_did_not_fall() -> None:
    """A track handed from a tall box (a pillar's shadow taken for someone, 288 px) to a
    person 360 px to its left, lower in the view: nobody falls a body height sideways. In a
    16:9 frame 360 px is less than the height in normalised units, more in pixels."""
    fall = Fall()
    tall = (0.6, 0.3, 0.615, 0.7)
    for n in range(3):
        fall.update(n * 0.5, [person_track(tall, n * 0.5)], None, SHAPE)
    there = (0.3, 0.58, 0.33, 0.72)
    legs = [(0.31, 0.69), (0.32, 0.69), (0.31, 0.71), (0.32, 0.71)]
    pose = pose_of(there, shoulders=(0.315, 0.62), hips=(0.315, 0.68), extra=legs)
    events = []
    for n in range(3, 10):
        events += fall.update(n * 0.5, [person_track(there, n * 0.5)], pose, SHAPE)
    assert events == []


def test_a_body_the_detector_loses_once_it_lies_is_reported_from_the_pose_model() -> None:
    """A person detector sees lying people poorly: it finds the body in the frame it went
    down (the pose model found nobody there), then loses it, while the pose model still
    sees a body lying where it fell."""
    fall = Fall()
    lying = (0.35, 0.62, 0.6, 0.72)
    pose = pose_of((0.36, 0.61, 0.6, 0.73), shoulders=(0.38, 0.66), hips=(0.5, 0.67))
    events = []
    for n in range(8):
        ts = n * 0.5
        if ts < 2.0:
            events += fall.update(ts, [person_track(STANDING, ts)], None, SHAPE)
        elif ts == 2.0:
            events += fall.update(ts, [person_track(lying, ts)], Detections.empty(), SHAPE)
        else:
            events += fall.update(ts, [], pose, SHAPE)
    assert [(e.ts, e.track_id) for e in events] == [(3.0, None)]
    assert events[0].confidence > 0


def test_a_fall_caught_on_its_way_down_at_one_frame_a_second_is_reported_when_down() -> None:
    """At 1 fps the frame after the last upright one catches the body half way down; on the
    next the body lies facing the camera, its box keeping most of its height but turned wide:
    that is the drop, reported then, not a second later."""
    fall = Fall()
    halfway = (0.42, 0.4, 0.55, 0.7)
    lying = (0.3, 0.36, 0.62, 0.7)  # 410 x 245 px: 0.85 of the standing height
    pose = pose_of(lying, shoulders=(0.35, 0.5), hips=(0.5, 0.52))
    events = []
    for n in range(8):
        ts = float(n)
        box = STANDING if ts < 3 else halfway if ts < 4 else lying
        events += fall.update(ts, [person_track(box, ts)], pose if ts >= 4 else None, SHAPE)
    assert [e.ts for e in events] == [4.0]


def test_crouching_to_tie_a_shoe_is_not_a_fall() -> None:
    """Head down to half the standing height, box shrunk, but the hips stay well up."""
    crouched = (0.45, 0.5, 0.51, 0.7)
    pose = pose_of(crouched, shoulders=(0.48, 0.53), hips=(0.48, 0.6))
    events = run_fall(2.0, crouched, pose, fall_at=3.0, seconds=6.0)
    assert events == []
    assert run_fall(2.0, STANDING, pose_of(STANDING, (0.47, 0.38), (0.47, 0.5))) == []


def test_a_fall_is_held_through_pose_dropouts_and_reported_once() -> None:
    fallen = (0.35, 0.62, 0.6, 0.72)
    pose = pose_of(fallen, shoulders=(0.38, 0.66), hips=(0.5, 0.67))
    events = run_fall(2.0, fallen, pose, seconds=12.0, dropouts={7, 9, 10, 11, 12, 15})
    assert [e.ts for e in events] == [3.0]


def test_someone_who_lay_down_slowly_is_reported_after_the_hold() -> None:
    """Lying already when first seen: no drop was seen, so the fall is held for a second."""
    fallen = (0.35, 0.62, 0.6, 0.72)
    pose = pose_of(fallen, shoulders=(0.38, 0.66), hips=(0.5, 0.67))
    fall = Fall()
    events = [e for n in range(6)
              for e in fall.update(n * 0.5, [person_track(fallen, n * 0.5)], pose, SHAPE)]  # fmt: skip
    assert [e.ts for e in events] == [1.0]


def test_a_camera_that_pans_sees_no_smoke() -> None:
    """Everything changes when the view moves: the box the model calls smoke changes more
    than the rest, but nothing can be told from it."""
    rng = np.random.default_rng(4)
    scene = rng.integers(40, 220, (SHAPE[0], SHAPE[1] * 2, 3), np.uint8)
    smoke = FireSmoke(NAMES)
    events = []
    for n in range(10):
        view = np.ascontiguousarray(scene[:, n * 40 : n * 40 + SHAPE[1]])
        events += smoke.update(float(n), found(1, (0.0, 0.0, 0.5, 0.5), 0.7), SHAPE, view)
    assert events == []


def test_small_people_seen_from_high_above_do_not_fall_when_their_boxes_turn_wide() -> None:
    """Walkers 40 px tall whose boxes now and then read wider than tall (arms, bags, a
    neighbour): no drop can be read at that size, so a wide box must hold for two seconds."""
    fall = Fall()
    rng = np.random.default_rng(5)
    events = []
    for n in range(40):
        ts = n * 0.5
        tracks = []
        for who in range(12):
            x, y = 0.05 + 0.07 * who + 0.004 * n, 0.3 + 0.03 * (who % 5)
            wide = rng.random() < 0.25
            w, h = (0.05, 0.05) if wide else (0.02, 0.055)
            tracks.append(person_track((x, y - h, x + w, y), ts, track_id=who + 1))
        events += fall.update(ts, tracks, None, SHAPE)
    assert events == []


def test_a_walker_seen_from_above_whose_torso_reads_flat_is_not_a_fall() -> None:
    """From straight above, someone walking across the view has a box as wide as tall and
    shoulders beside the hips: the torso reads horizontal in every frame, but the body moves
    on, and a fallen one stays where it fell."""
    fall = Fall()
    events = []
    for n in range(16):
        ts = n * 0.5
        x = 0.1 + 0.03 * n
        box = (x, 0.4, x + 0.06, 0.5)  # 77 x 72 px
        pose = pose_of(box, shoulders=(x + 0.01, 0.45), hips=(x + 0.045, 0.45))
        events += fall.update(ts, [person_track(box, ts)], pose, SHAPE)
    assert events == []


def test_a_fall_on_a_new_track_is_read_against_who_stood_there() -> None:
    """The tracker loses the falling body (its box changed too much) and starts a new track
    where it lands, half a body height away: the drop is still read, on the first frame."""
    fall = Fall()
    for n in range(3):
        fall.update(float(n), [person_track(STANDING, float(n), track_id=1)], None, SHAPE)
    fallen = (0.5, 0.62, 0.75, 0.72)  # fell to the right: beside where the feet were
    pose = pose_of(fallen, shoulders=(0.72, 0.66), hips=(0.6, 0.67))
    events = fall.update(3.0, [person_track(fallen, 3.0, track_id=2)], pose, SHAPE)
    assert [(e.ts, e.track_id) for e in events] == [(3.0, 2)]
    beside = Fall()
    for n in range(3):
        beside.update(float(n), [person_track(STANDING, float(n), track_id=1)], None, SHAPE)
    still_there = person_track(STANDING, 3.0, track_id=1)
    found = beside.update(3.0, [still_there, person_track(fallen, 3.0, track_id=2)], None, SHAPE)
    assert found == [], "someone else's standing is no measure of a new track's drop"


def test_someone_cut_by_the_frames_edge_is_not_lying_however_wide_the_box() -> None:
    """A man at a desk close to the camera, his box cut by the frame's bottom: wide, but
    his torso is upright."""
    fall = Fall()
    desk = (0.2, 0.3, 0.8, 1.0)  # 768 x 504 px, cut by the bottom edge
    pose = pose_of(desk, shoulders=(0.5, 0.6), hips=(0.5, 0.95))
    events = []
    for n in range(8):
        track = person_track(desk, n * 0.5)
        track.whole = False
        events += fall.update(n * 0.5, [track], pose, SHAPE)
    assert events == []
