"""Per-camera tracking with Ultralytics' ByteTrack, and the track history analytics read."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vision.detector import Detections

SCORE_HISTORY = 10  # scores kept per track for the median `threshold` filter
LOST_AFTER_S = 5.0  # a track unseen this long is gone


@dataclass
class Track:
    """One tracked object; boxes are normalised xyxy (0..1)."""

    id: int
    label: str
    box: tuple[float, float, float, float]
    score: float
    first_seen: float
    last_seen: float
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=SCORE_HISTORY))

    @property
    def median_score(self) -> float:
        return statistics.median(self.scores) if self.scores else 0.0

    @property
    def anchor(self) -> tuple[float, float]:
        """The bottom centre of the box: where the object stands."""
        x1, _, x2, y2 = self.box
        return ((x1 + x2) / 2, y2)

    @property
    def centre(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return ((x1 + x2) / 2, (y1 + y2) / 2)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


class CameraTracker:
    """ByteTrack over one camera's detections; `update` returns the tracks seen in this frame."""

    def __init__(self, names: dict[int, str], fps: float) -> None:
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import IterableSimpleNamespace

        args = IterableSimpleNamespace(
            tracker_type="bytetrack",
            track_high_thresh=0.25,
            track_low_thresh=0.1,
            new_track_thresh=0.25,
            track_buffer=max(10, round(LOST_AFTER_S * fps)),  # frames, so scale with the rate
            match_thresh=0.8,
            fuse_score=True,
        )
        self._tracker: Any = BYTETracker(args)  # type: ignore[no-untyped-call]
        self.names = names
        self.tracks: dict[int, Track] = {}

    def update(self, dets: Detections, shape: tuple[int, int], ts: float) -> list[Track]:
        from ultralytics.engine.results import Boxes

        height, width = shape
        data = np.concatenate([dets.xyxy, dets.conf[:, None], dets.cls[:, None]], axis=1)
        rows = self._tracker.update(Boxes(data.astype(np.float32), (height, width)))
        scale = np.array([width, height, width, height], np.float32)
        seen: list[Track] = []
        for row in rows:
            box = np.clip(row[:4] / scale, 0.0, 1.0)
            track_id, score, label = int(row[4]), float(row[5]), self.names[int(row[6])]
            track = self.tracks.get(track_id)
            if track is None:
                track = Track(track_id, label, (0, 0, 0, 0), score, ts, ts)
                self.tracks[track_id] = track
            track.box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            track.score, track.last_seen, track.label = score, ts, label
            track.scores.append(score)
            seen.append(track)
        self._forget(ts)
        return seen

    def _forget(self, ts: float) -> None:
        for track_id in [t.id for t in self.tracks.values() if ts - t.last_seen > LOST_AFTER_S]:
            del self.tracks[track_id]
