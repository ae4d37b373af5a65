"""Per-camera tracking built for 1-2 analysed frames a second, and the history analytics read.

IoU trackers (ByteTrack, SORT) link a box to the one it overlaps in the next frame. At 1-2 fps
a walking person has moved a body width or more between frames, so the boxes do not overlap:
tracks are never confirmed and, where they are, they jump between neighbours. Here a track is
matched to the detection nearest its predicted position, with the distance measured in box
sizes and allowed to grow with the time since the track was last seen; a globally optimal
assignment (`lap`) keeps neighbours apart in a crowd. Each track keeps, as Frigate does, a score
history in which a frame that missed it counts as zero, and its label is voted over its life.
"""

from __future__ import annotations

import statistics
from collections import defaultdict, deque
from dataclasses import dataclass, field

import lap
import numpy as np

from vision.detector import Detections

Box = tuple[float, float, float, float]
EDGE = 0.02  # a box within this of the frame's top or bottom is cut off by it


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    history: int = 10  # detector frames in a track's score history
    lost_after_s: float = 5.0  # a track unseen this long is gone
    gate: float = 0.15  # distance (box diagonals) always allowed between prediction and box
    speed: float = 1.2  # diagonals a second added to the gate before a track has a velocity
    speed_known: float = 0.6  # the same once the track's velocity is known
    max_size_ratio: float = 4.0  # larger area changes are another object
    relabel_iou: float = 0.5  # a box of another label continues a track only if this close
    predict_max_s: float = 2.0  # velocity is extrapolated at most this far
    hidden_below: float = 0.75  # a box this much shorter, its top in place, is cut off below
    size_weight: float = 0.3  # cost of a change of size (log of the area ratio)


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

    @classmethod
    def of(cls, boxes: np.ndarray, labels: list[str], shape: tuple[int, int]) -> _FrameBoxes:
        height, width = shape
        scale = np.array([width, height, width, height], np.float32)
        pixels = boxes * scale
        centres = (pixels[:, :2] + pixels[:, 2:]) / 2
        return cls(pixels, scale, _areas(pixels), _diagonal(pixels), centres, labels)


class CameraTracker:
    """`update` with each detector frame; `tracks` holds every live track."""

    def __init__(self, names: dict[int, str], config: TrackerConfig | None = None) -> None:
        self.names = names
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, dets: Detections, shape: tuple[int, int], ts: float) -> list[Track]:
        """Match this frame's detections to the tracks; returns the tracks seen in it."""
        height, width = shape
        boxes = np.clip(dets.xyxy / np.array([width, height, width, height], np.float32), 0, 1)
        labels = [self.names.get(int(c), str(int(c))) for c in dets.cls]
        live = list(self.tracks.values())
        pairs = self._assign(live, boxes, labels, ts, shape)
        matched_tracks = {t for t, _ in pairs}
        seen: list[Track] = []
        for t_index, d_index in pairs:
            track = live[t_index]
            self._observe(track, _box(boxes[d_index]), float(dets.conf[d_index]),
                          labels[d_index], ts)  # fmt: skip
            seen.append(track)
        for t_index, track in enumerate(live):
            if t_index not in matched_tracks:
                track.visible = False
                _remember(track.scores, 0.0, self.config.history)  # a miss counts as zero
        matched_dets = {d for _, d in pairs}
        for d_index in range(len(boxes)):
            if d_index not in matched_dets:
                seen.append(self._start(_box(boxes[d_index]), float(dets.conf[d_index]),
                                        labels[d_index], ts))  # fmt: skip
        self._forget(ts)
        return seen

    def _assign(
        self, live: list[Track], boxes: np.ndarray, labels: list[str], ts: float,
        shape: tuple[int, int],
    ) -> list[tuple[int, int]]:  # fmt: skip
        if not live or len(boxes) == 0:
            return []
        frame = _FrameBoxes.of(boxes, labels, shape)
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
        allowed = config.gate + speed * dt
        ratio = np.maximum(frame.areas, 1e-6) / max(float(_areas(predicted[None])[0]), 1e-6)
        same_size = np.maximum(ratio, 1 / ratio) <= config.max_size_ratio
        same_label = np.array([label == track.label for label in frame.labels])
        possible = (
            (distance <= allowed) & same_size & (same_label | (overlap >= config.relabel_iou))
        )
        cost = distance + (1.0 - overlap) + config.size_weight * np.abs(np.log(ratio))
        return np.where(possible, cost, np.inf)

    def _observe(self, track: Track, box: Box, score: float, label: str, ts: float) -> None:
        dt = ts - track.last_seen
        if dt > 0:
            (cx, cy), (nx, ny) = track.centre, _centre(box)
            step = ((nx - cx) / dt, (ny - cy) / dt)
            old = track.velocity
            track.velocity = step if old is None else ((old[0] + step[0]) / 2,
                                                       (old[1] + step[1]) / 2)  # fmt: skip
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
        track = Track(self._next_id, label, box, score, ts, ts, observations=1,
                      height=box[3] - box[1], foot=box[3],
                      whole=box[1] > EDGE and box[3] < 1.0 - EDGE)  # fmt: skip
        _remember(track.scores, score, self.config.history)
        track.votes[label] += score
        self.tracks[track.id] = track
        self._next_id += 1
        return track

    def _forget(self, ts: float) -> None:
        gone = [t.id for t in self.tracks.values() if ts - t.last_seen > self.config.lost_after_s]
        for track_id in gone:
            del self.tracks[track_id]


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
