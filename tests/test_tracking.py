"""Tracking at 1-2 fps and the analytics that read tracks, on detections laid out by hand:
people walking a body width a second, a detector that misses now and then or flips a label,
box edges jittering on a tripwire, a fallen person whose track is lost."""

from __future__ import annotations

import numpy as np
import pytest

from devices.zone_params import CrowdParams, LineParams, RestrictedParams
from vision.analytics.fall import Fall
from vision.analytics.fire import FireSmoke
from vision.analytics.zones import Crowd, Intrusion, LineCrossing
from vision.detector import Detections
from vision.tracking import CameraTracker, Track

NAMES = {0: "person", 16: "dog"}
SHAPE = (720, 1280)  # height, width
FULL = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def dets(*boxes: tuple[float, float, float, float], conf: float = 0.8,
         cls: list[int] | None = None) -> Detections:  # fmt: skip
    """Detections from normalised boxes."""
    height, width = SHAPE
    xyxy = np.array(boxes, np.float32).reshape(-1, 4) * np.array([width, height, width, height])
    n = len(xyxy)
    return Detections(xyxy.astype(np.float32), np.full(n, conf, np.float32),
                      np.array(cls if cls is not None else [0] * n))  # fmt: skip


def person(
    x: float, y: float, w: float = 0.04, h: float = 0.16
) -> tuple[float, float, float, float]:
    """A standing person whose feet are at (x, y)."""
    return (x - w / 2, y - h, x + w / 2, y)


def test_people_walking_a_body_width_a_second_keep_their_ids_at_1_fps() -> None:
    tracker = CameraTracker(NAMES)
    ids: list[set[int]] = [set(), set(), set()]
    for second in range(10):
        walked = second * 0.05  # more than a box width (0.04) between frames: no overlap
        boxes = [person(0.2 + walked, 0.5), person(0.8 - walked, 0.6),
                 person(0.5, 0.3 + walked / 2)]  # fmt: skip
        seen = tracker.update(dets(*boxes), SHAPE, float(second))
        for track in seen:
            which = min(range(3), key=lambda i: np.abs(np.subtract(track.box, boxes[i])).sum())
            ids[which].add(track.id)
    assert all(len(v) == 1 for v in ids), ids
    assert len(tracker.tracks) == 3


def test_ultralytics_bytetrack_loses_the_same_walkers() -> None:
    """The baseline the tracker replaces: IoU association cannot follow them at 1 fps."""
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import IterableSimpleNamespace

    args = IterableSimpleNamespace(track_high_thresh=0.25, track_low_thresh=0.1,
                                   new_track_thresh=0.25, track_buffer=30, match_thresh=0.8,
                                   fuse_score=True)  # fmt: skip
    tracker = BYTETracker(args)  # type: ignore[no-untyped-call]
    ids: set[int] = set()
    confirmed = 0
    for second in range(10):
        d = dets(person(0.2 + second * 0.05, 0.5))
        data = np.concatenate([d.xyxy, d.conf[:, None], d.cls[:, None]], axis=1)
        rows = tracker.update(Boxes(data.astype(np.float32), SHAPE))
        confirmed += len(rows)
        ids |= {int(r[4]) for r in rows}
    assert confirmed < 5 or len(ids) > 1


def test_a_miss_counts_as_zero_and_the_label_is_voted() -> None:
    tracker = CameraTracker(NAMES)
    box = person(0.5, 0.5)
    for frame in range(6):
        label = [16] if frame == 3 else [0]  # one frame the detector says dog
        tracker.update(dets(box, cls=label), SHAPE, float(frame))
    ghost = person(0.1, 0.9)
    tracker.update(dets(box, ghost), SHAPE, 6.0)
    for frame in range(7, 10):
        tracker.update(dets(box), SHAPE, float(frame))
    walker, phantom = sorted(tracker.tracks.values(), key=lambda t: t.first_seen)
    assert walker.label == "person" and walker.median_score == pytest.approx(0.8)
    assert phantom.median_score == 0.0
    assert list(phantom.scores) == pytest.approx([0.8, 0.0, 0.0, 0.0])


def test_a_track_is_not_counted_in_a_crowd_once_the_detector_stops_seeing_it() -> None:
    tracker = CameraTracker(NAMES)
    crowd = Crowd("plaza", FULL, CrowdParams(min_persons=2, **{"for": 0}))
    three = [person(0.2, 0.5), person(0.5, 0.5), person(0.8, 0.5)]
    tracker.update(dets(*three), SHAPE, 0.0)
    assert len(crowd.members(list(tracker.tracks.values()))) == 3
    tracker.update(dets(*three[:1]), SHAPE, 1.0)
    tracks = list(tracker.tracks.values())
    assert len(tracks) == 3, "the missed two live on for a while"
    assert len(crowd.members(tracks)) == 1, "but only the one seen now is counted"


def walker(track_id: int, ts: float, foot: float, height: float = 0.16) -> Track:
    track = Track(track_id, "person", (0.48, foot - height, 0.52, foot), 0.8, 0.0, ts)
    track.scores.extend([0.8] * 5)
    track.foot, track.height = foot, height
    return track


def line() -> LineCrossing:
    return LineCrossing("door", [(0.0, 0.5), (1.0, 0.5)],
                        LineParams(forward="in", backward="out"))  # fmt: skip


def test_a_crossing_counts_once_each_way_and_jitter_on_the_line_never() -> None:
    tripwire = line()
    events = []
    path = [0.4, 0.45, 0.52, 0.49, 0.53, 0.6, 0.65, 0.7, 0.62, 0.55, 0.45, 0.4, 0.35]
    for n, foot in enumerate(path):
        events += tripwire.update(float(n), [walker(1, float(n), foot)])
    assert [e.direction for e in events] == ["in", "out"]
    jitter = line()
    wobble = [0.47, 0.53, 0.46, 0.54, 0.47, 0.53, 0.48, 0.52] * 2  # within 0.1 box heights
    found = [e for n, f in enumerate(wobble) for e in jitter.update(float(n), [walker(2, n, f)])]
    assert found == []


def test_no_crossing_from_a_track_found_again_or_cut_off_by_the_frame() -> None:
    tripwire = line()
    assert tripwire.update(0.0, [walker(1, 0.0, 0.3)]) == []
    later = [e for ts in (10.0, 11.0, 12.0) for e in tripwire.update(ts, [walker(1, ts, 0.8)])]
    assert later == [], "seen again 10 s later on the other side: not a crossing anyone saw"
    cut = line()
    steps = []
    for n, foot in enumerate([0.3, 0.35, 0.8, 0.85, 0.9]):
        track = walker(3, float(n), foot)
        track.whole = n < 2  # from the third frame on someone in front hides its legs
        steps += cut.update(float(n), [track])
    assert steps == []


def test_a_track_handed_to_someone_half_its_size_does_not_cross() -> None:
    tripwire = line()
    events = []
    for n, (foot, height) in enumerate([(0.4, 0.16), (0.4, 0.16), (0.6, 0.07), (0.62, 0.07)]):
        events += tripwire.update(float(n), [walker(1, float(n), foot, height)])
    assert events == []


def test_a_track_crossing_straight_back_is_not_counted_twice() -> None:
    """In, and out again two frames later (a track handed to someone on the other side at
    1 fps): one crossing; with `rebound_s` 0 the turn back counts too."""
    path = [0.3, 0.35, 0.62, 0.66, 0.38, 0.34, 0.3]
    for rebound, expected in ((3.0, ["in"]), (0.0, ["in", "out"])):
        tripwire = LineCrossing("door", [(0.0, 0.5), (1.0, 0.5)],
                                LineParams(forward="in", backward="out", rebound_s=rebound))  # fmt: skip
        events = [e for n, foot in enumerate(path)
                  for e in tripwire.update(float(n), [walker(1, float(n), foot)])]  # fmt: skip
        assert [e.direction for e in events] == expected, rebound


def test_smoke_needs_most_of_a_window_seen_well() -> None:
    """Frames of haze at 0.35-0.6 among misses: nothing. Churning smoke held at 0.6: one
    event on its third run in view at 1 fps, and no second while it stays."""
    names = {0: "smoke", 1: "fire"}
    haze = FireSmoke(names)
    scores = [0.0, 0.58, 0.0, 0.35, 0.0, 0.0, 0.0, 0.46, 0.0]
    found = [e for n, score in enumerate(scores)
             for e in haze.update(float(n), smoke(score), SHAPE, churning(n))]  # fmt: skip
    assert found == []
    fire = FireSmoke(names)
    held = [e for n in range(10) for e in fire.update(float(n), smoke(0.6), SHAPE, churning(n))]
    assert [(e.type, e.ts) for e in held] == [("smoke", 2.0)]
    assert held[0].confidence == pytest.approx(0.6)


def churning(n: int) -> np.ndarray:
    """A still grey frame whose smoke box (0.2-0.6 x 0.2-0.7) changes from frame to frame."""
    height, width = SHAPE
    image = np.full((height, width, 3), 100, np.uint8)
    rows = slice(int(0.2 * height), int(0.7 * height))
    cols = slice(int(0.2 * width), int(0.6 * width))
    image[rows, cols] = np.random.default_rng(n).integers(60, 200, (1, 1, 3), np.uint8)
    return image


def smoke(score: float) -> Detections:
    if score == 0.0:
        return Detections.empty()
    return dets((0.2, 0.2, 0.6, 0.7), conf=score)


def lying_pose(box: tuple[float, float, float, float]) -> Detections:
    """A pose result for one person lying on their side across `box` (normalised)."""
    height, width = SHAPE
    x1, y1, x2, y2 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    keypoints = np.zeros((1, 17, 3), np.float32)
    mid = (y1 + y2) / 2
    keypoints[0, [5, 6]] = [[x1 + 10, mid, 0.9], [x1 + 12, mid + 4, 0.9]]  # shoulders
    keypoints[0, [11, 12]] = [[x2 - 40, mid, 0.9], [x2 - 38, mid + 4, 0.9]]  # hips
    return Detections(np.array([[x1, y1, x2, y2]], np.float32), np.array([0.8], np.float32),
                      np.array([0]), keypoints)  # fmt: skip


def test_a_fall_is_held_across_a_change_of_track() -> None:
    fall = Fall()
    down = (0.3, 0.7, 0.5, 0.8)  # wide: lying
    events = []
    for n, track_id in enumerate([1, 1, 2, 2, 3]):  # the tracker gives the body new ids
        ts = n * 0.5
        track = Track(track_id, "person", down, 0.8, ts, ts)
        events += fall.update(ts, [track], lying_pose(down), SHAPE)
    assert [e.ts for e in events] == [1.0], "one fall, 1 s after it began, not per track"


def dressed(*people: tuple[tuple[float, float, float, float], tuple[int, int, int]]) -> np.ndarray:
    """A grey frame with each box painted in its (BGR) colour."""
    height, width = SHAPE
    image = np.full((height, width, 3), 128, np.uint8)
    for (x1, y1, x2, y2), colour in people:
        image[int(y1 * height) : int(y2 * height), int(x1 * width) : int(x2 * width)] = colour
    return image


RED, BLUE = (40, 40, 200), (200, 60, 30)


def test_someone_arriving_where_another_left_is_a_new_track_unless_they_look_alike() -> None:
    """At 1 fps, one person stands in a doorway for 3 s and leaves; 2 s later another stands
    there. Dressed differently, the newcomer is a new track; the same colours within the
    time budget are the first one found again."""
    for second_colour, same in ((BLUE, False), (RED, True)):
        tracker = CameraTracker(NAMES)
        first, second = person(0.5, 0.6), person(0.52, 0.6)
        for ts in range(3):
            tracker.update(dets(first), SHAPE, float(ts), dressed((first, RED)))
        (old,) = tracker.tracks.values()
        for gone in (3.0, 4.0):
            tracker.update(Detections.empty(), SHAPE, gone, dressed())
        seen = tracker.update(dets(second), SHAPE, 5.0, dressed((second, second_colour)))
        assert (seen[0].id == old.id) is same, second_colour


def test_unseen_tracks_expire_sooner_at_the_frame_side() -> None:
    tracker = CameraTracker(NAMES)
    middle, side = person(0.5, 0.6), person(0.985, 0.6)
    tracker.update(dets(middle, side), SHAPE, 0.0)
    tracker.update(Detections.empty(), SHAPE, 1.0)
    assert len(tracker.tracks) == 2
    tracker.update(Detections.empty(), SHAPE, 2.0)
    assert [t.box for t in tracker.tracks.values()] == [pytest.approx(middle)]
    tracker.update(Detections.empty(), SHAPE, 3.5)
    assert tracker.tracks == {}


def test_a_prediction_does_not_reach_further_the_longer_a_track_is_unseen() -> None:
    """A track unseen for 3 s may be found again about where it was heading, not anywhere
    within three seconds' walk of it."""
    tracker = CameraTracker(NAMES)
    tracker.update(dets(person(0.2, 0.6)), SHAPE, 0.0)
    far = tracker.update(dets(person(0.5, 0.6)), SHAPE, 3.0)
    assert far[0].id != 1


def test_an_empty_zone_rearms_intrusion_for_whoever_comes_next() -> None:
    """A track reported in a restricted zone leaves it; 5 s later (the detector having seen
    the zone empty) the same track id is back in it: a new intrusion. Away for 2 s: not."""
    for away, expected in ((5, 2), (2, 1)):
        zone = Intrusion("door", [(0.3, 0.3), (0.7, 0.3), (0.7, 0.9), (0.3, 0.9)],
                         RestrictedParams(rearm_s=4.0))  # fmt: skip
        events = []
        track = walker(1, 0.0, 0.6)
        for ts in range(4):  # inside
            track = walker(1, float(ts), 0.6)
            events += zone.update(float(ts), [track])
        for ts in range(4, 4 + away):  # the detector runs and sees nobody in the zone
            events += zone.update(float(ts), [track])
        back = walker(1, float(4 + away), 0.6)
        events += zone.update(float(4 + away), [back])
        assert len(events) == expected, away
        assert zone.update(float(5 + away), [walker(1, float(5 + away), 0.6)]) == []


def test_frames_the_detector_did_not_see_do_not_empty_a_zone() -> None:
    zone = Intrusion("door", FULL, RestrictedParams(rearm_s=1.0, inertia=1))
    assert len(zone.update(0.0, [walker(1, 0.0, 0.6)])) == 1
    for ts in range(1, 6):  # a still scene: motion gating spares the detector
        assert zone.update(float(ts), [walker(1, 0.0, 0.6)], detected=False) == []
    assert zone.update(6.0, [walker(1, 6.0, 0.6)]) == []


def test_a_crowd_counts_this_frames_people_confirmed_or_not() -> None:
    """Twelve small people the detector found in this frame, at 0.35-0.5, on tracks one frame
    old: all counted. A detection below the zone's count_score is not."""
    tracker = CameraTracker(NAMES)
    crowd = Crowd("plaza", FULL, CrowdParams(min_persons=10, count_score=0.3, **{"for": 0}))
    people = [person(0.05 + 0.075 * n, 0.5, w=0.02, h=0.05) for n in range(12)]
    tracker.update(dets(*people, conf=0.35), SHAPE, 0.0)
    now = dets(*people, conf=0.5)
    now.conf[11] = 0.26
    tracker.update(now, SHAPE, 0.5)
    tracks = list(tracker.tracks.values())
    assert len(tracks) == 12 and len(crowd.members(tracks)) == 11
    (event,) = crowd.update(0.5, tracks)
    assert event.count == 11 and event.confidence == pytest.approx(0.5)
