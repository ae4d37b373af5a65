"""Per-camera tracking built for 1-2 analysed frames a second, and the history analytics read.

IoU trackers (ByteTrack, SORT) link a box to the one it overlaps in the next frame. At 1-2 fps
a walking person has moved a body width or more between frames, so the boxes do not overlap:
tracks are never confirmed and, where they are, they jump between neighbours. Here a track is
matched to the detection nearest its predicted position, with the distance measured in box
sizes and allowed to grow with the time since the track was last seen; a globally optimal
assignment (`lap`) keeps neighbours apart in a crowd. Each track keeps, as Frigate does, a score
history in which a frame that missed it counts as zero, and its label is voted over its life.

A person who leaves and another who arrives are two tracks. An unseen track lives
`lost_after_s` (two or three analysed frames at 1-2 fps), one last seen at the frame's edge
only `exit_after_s`; the distance a prediction may be off grows with the time unseen only up to
`predict_max_s`; and a track found again after a miss must look like itself: each box carries
a hue-saturation histogram of its middle, and a box whose colours are further than
`appearance_gate` (Bhattacharyya distance) from the track's is someone else.
"""

from __future__ import annotations

import statistics
from collections import defaultdict, deque
from dataclasses import dataclass, field

import cv2
import lap
import numpy as np

from vision.detector import Detections

Box = tuple[float, float, float, float]
EDGE = 0.02  # a box within this of the frame's top or bottom is cut off by it


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    history: int = 10  # detector frames in a track's score history
    lost_after_s: float = 3.0  # a track unseen this long is gone
    exit_after_s: float = 1.0  # the same for a track last seen touching the frame's side
    gate: float = 0.15  # distance (box diagonals) always allowed between prediction and box
    speed: float = 1.2  # diagonals a second added to the gate before a track has a velocity
    speed_known: float = 0.6  # the same once the track's velocity is known
    max_size_ratio: float = 4.0  # larger area changes are another object
    relabel_iou: float = 0.5  # a box of another label continues a track only if this close
    predict_max_s: float = 2.0  # velocity is extrapolated at most this far
    hidden_below: float = 0.75  # a box this much shorter, its top in place, is cut off below
    size_weight: float = 0.3  # cost of a change of size (log of the area ratio)
    appearance_gate: float = 0.6  # colours further apart (Bhattacharyya) after a miss: another
    appearance_weight: float = 0.2  # cost of a change of colours


@dataclass
class Track:
    """One tracked object; boxes are normalised xyxy (0..1)."""

    id: int
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    scores: deque[float] = field(default_factory=deque)
    votes: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    velocity: tuple[float, float] | None = None  # centre, normalised units a second
    observations: int = 0
    visible: bool = True  # matched by the latest detector frame
    height: float = 0.0  # the box's usual height, followed slowly
    foot: float = 0.0  # where it stands (y): the box's bottom unless something hides it
    whole: bool = True  # the latest box shows the whole object: not cut off by an edge or
    # hidden from below
    colours: np.ndarray | None = None  # hue-saturation histogram (sum 1), followed slowly

    @property
    def median_score(self) -> float:
        return statistics.median(self.scores) if self.scores else 0.0

    @property
    def anchor(self) -> tuple[float, float]:
        """The bottom centre of the box, where the object stands; when someone in front hides
        its legs (the box shrank from below), its top plus its usual height."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2, self.foot or y2)

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2, (y1 + y2) / 2)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    def predicted(self, ts: float, predict_max_s: float) -> Box:
        if self.velocity is None:
            return self.box
        dt = min(ts - self.last_seen, predict_max_s)
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)


@dataclass(frozen=True, slots=True)
class _FrameBoxes:
    """One frame's detections in pixels, with what every track's costs read of them."""

    pixels: np.ndarray
    scale: np.ndarray
    areas: np.ndarray
    diagonals: np.ndarray
    centres: np.ndarray
    labels: list[str]
    colours: np.ndarray | None  # one histogram a row, when the image was given

    @classmethod
    def of(
        cls,
        boxes: np.ndarray,
        labels: list[str],
        shape: tuple[int, int],
        colours: np.ndarray | None,
    ) -> _FrameBoxes:
        height, width = shape
        scale = np.array([width, height, width, height], np.float32)
        pixels = boxes * scale
        centres = (pixels[:, :2] + pixels[:, 2:]) / 2
        return cls(pixels, scale, _areas(pixels), _diagonal(pixels), centres, labels, colours)


class CameraTracker:
    """`update` with each detector frame; `tracks` holds every live track."""

    def __init__(self, names: dict[int, str], config: TrackerConfig | None = None) -> None:
        self.names = names
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(
        self, dets: Detections, shape: tuple[int, int], ts: float, image: np.ndarray | None = None
    ) -> list[Track]:
        """Match this frame's detections to the tracks; returns the tracks seen in it. With the
        frame's `image` (BGR) the boxes' colours help tell people apart."""
        height, width = shape
        boxes = np.clip(dets.xyxy / np.array([width, height, width, height], np.float32), 0, 1)
        labels = [self.names.get(int(c), str(int(c))) for c in dets.cls]
        colours = colour_histograms(image, dets.xyxy) if image is not None else None
        live = list(self.tracks.values())
        frame = _FrameBoxes.of(boxes, labels, shape, colours)
        pairs = self._assign(live, frame, ts)
        matched_tracks = {t for t, _ in pairs}
        seen: list[Track] = []
        for t_index, d_index in pairs:
            track = live[t_index]
            self._observe(
                track, _box(boxes[d_index]), float(dets.conf[d_index]), labels[d_index], ts
            )
            _follow_colours(track, colours, d_index)
            seen.append(track)
        for t_index, track in enumerate(live):
            if t_index not in matched_tracks:
                track.visible = False
                _remember(track.scores, 0.0, self.config.history)  # a miss counts as zero
        matched_dets = {d for _, d in pairs}
        for d_index in range(len(boxes)):
            if d_index not in matched_dets:
                track = self._start(
                    _box(boxes[d_index]), float(dets.conf[d_index]), labels[d_index], ts
                )
                _follow_colours(track, colours, d_index)
                seen.append(track)
        self._forget(ts)
        return seen

    def _assign(self, live: list[Track], frame: _FrameBoxes, ts: float) -> list[tuple[int, int]]:
        if not live or len(frame.labels) == 0:
            return []
        cost = np.stack([self._costs(track, frame, ts) for track in live])
        finite = np.where(np.isfinite(cost), cost, 1e6)
        _, rows, _ = lap.lapjv(finite, extend_cost=True, cost_limit=1e5)
        return [(t, int(d)) for t, d in enumerate(rows) if d >= 0 and np.isfinite(cost[t, d])]

    def _costs(self, track: Track, frame: _FrameBoxes, ts: float) -> np.ndarray:
        """Cost of continuing `track` with each box; inf where it cannot be the same object."""
        config = self.config
        predicted = np.array(track.predicted(ts, config.predict_max_s), np.float32) * frame.scale
        overlap = iou(predicted, frame.pixels)
        centre = (predicted[:2] + predicted[2:]) / 2
        diag = np.maximum(_diagonal(predicted[None])[0], frame.diagonals)
        distance = np.linalg.norm(frame.centres - centre, axis=1) / np.maximum(diag, 1e-6)
        dt = max(0.0, ts - track.last_seen)
        speed = config.speed if track.velocity is None else config.speed_known
        allowed = config.gate + speed * min(dt, config.predict_max_s)
        ratio = np.maximum(frame.areas, 1e-6) / max(float(_areas(predicted[None])[0]), 1e-6)
        same_size = np.maximum(ratio, 1 / ratio) <= config.max_size_ratio
        same_label = np.array([label == track.label for label in frame.labels])
        possible = (
            (distance <= allowed) & same_size & (same_label | (overlap >= config.relabel_iou))
        )
        cost = distance + (1.0 - overlap) + config.size_weight * np.abs(np.log(ratio))
        if track.colours is not None and frame.colours is not None:
            apart = bhattacharyya(track.colours, frame.colours)
            cost = cost + config.appearance_weight * apart
            if not track.visible:  # found again after a miss: it must look like itself
                possible &= apart <= config.appearance_gate
        return np.where(possible, cost, np.inf)

    def _observe(self, track: Track, box: Box, score: float, label: str, ts: float) -> None:
        dt = ts - track.last_seen
        if dt > 0:
            (cx, cy), (nx, ny) = track.centre, _centre(box)
            step = ((nx - cx) / dt, (ny - cy) / dt)
            old = track.velocity
            track.velocity = (
                step if old is None else ((old[0] + step[0]) / 2, (old[1] + step[1]) / 2)
            )
        self._footing(track, box, ts)
        track.box, track.score, track.last_seen, track.visible = box, score, ts, True
        track.observations += 1
        _remember(track.scores, score, self.config.history)
        track.votes[label] += score
        track.label = max(track.votes, key=track.votes.__getitem__)

    def _footing(self, track: Track, box: Box, ts: float) -> None:
        """Where the track stands now. A box that lost height while its top stayed where the
        track's motion puts it has been cut off from below (a person in front): the feet are
        its top plus the usual height. Otherwise the box's bottom, and the height follows."""
        top, bottom = box[1], box[3]
        height = bottom - top
        expected_top = track.predicted(ts, self.config.predict_max_s)[1]
        hidden = (
            height < self.config.hidden_below * track.height
            and abs(top - expected_top) < 0.15 * track.height
        )
        track.whole = not hidden and top > EDGE and bottom < 1.0 - EDGE
        if hidden:
            track.foot = min(1.0, top + track.height)
            return
        track.height = 0.7 * track.height + 0.3 * height
        track.foot = bottom

    def _start(self, box: Box, score: float, label: str, ts: float) -> Track:
        track = Track(
            self._next_id,
            label,
            box,
            score,
            ts,
            ts,
            observations=1,
            height=box[3] - box[1],
            foot=box[3],
            whole=box[1] > EDGE and box[3] < 1.0 - EDGE,
        )
        _remember(track.scores, score, self.config.history)
        track.votes[label] += score
        self.tracks[track.id] = track
        self._next_id += 1
        return track

    def _forget(self, ts: float) -> None:
        gone = [t.id for t in self.tracks.values() if ts - t.last_seen > self._budget(t)]
        for track_id in gone:
            del self.tracks[track_id]

    def _budget(self, track: Track) -> float:
        """How long an unseen track lives: someone last seen at the frame's side has most
        likely stepped out of it."""
        x1, y1, x2, y2 = track.box
        at_side = min(x1, y1) <= EDGE or max(x2, y2) >= 1.0 - EDGE
        return self.config.exit_after_s if at_side else self.config.lost_after_s


HUE_BINS, SATURATION_BINS = 16, 8


def colour_histograms(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """A hue-saturation histogram (summing to 1) of the middle of each box: the inner half of
    its width and its upper two thirds (clothes, not the floor around the feet)."""
    height, width = image.shape[:2]
    found = np.zeros((len(xyxy), HUE_BINS * SATURATION_BINS), np.float32)
    for row, (x1, y1, x2, y2) in enumerate(xyxy):
        w, h = x2 - x1, y2 - y1
        left, right = int(max(0, x1 + w / 4)), int(min(width, x2 - w / 4))
        top, bottom = int(max(0, y1 + h / 10)), int(min(height, y1 + h * 2 / 3))
        if right - left < 2 or bottom - top < 2:
            continue
        hsv = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SATURATION_BINS], [0, 180, 0, 256])
        found[row] = hist.ravel() / max(float(hist.sum()), 1.0)
    return found


def bhattacharyya(one: np.ndarray, many: np.ndarray) -> np.ndarray:
    """Distance (0 same, 1 disjoint) between one histogram and each row of `many`; an empty
    histogram (a box too small to read) is near everything."""
    coefficient = np.sqrt(many) @ np.sqrt(one)
    empty = (many.sum(axis=1) == 0) | (one.sum() == 0)
    distance = np.sqrt(np.clip(1.0 - coefficient, 0.0, 1.0))
    return np.asarray(np.where(empty, 0.0, distance), np.float32)


def _follow_colours(track: Track, colours: np.ndarray | None, row: int) -> None:
    if colours is None or colours[row].sum() == 0:
        return
    old = track.colours
    track.colours = colours[row].copy() if old is None else 0.7 * old + 0.3 * colours[row]


def _remember(scores: deque[float], score: float, size: int) -> None:
    scores.append(score)
    while len(scores) > size:
        scores.popleft()


def _box(row: np.ndarray) -> Box:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def _centre(box: Box) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(
        np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    )


def _diagonal(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = _areas(box[None])[0] + _areas(boxes) - inter
    return np.asarray(inter / np.maximum(union, 1e-9), np.float32)
