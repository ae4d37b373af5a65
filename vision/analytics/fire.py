"""Fire and smoke from a dedicated detector, judged over a history of frames, not one frame.

As Frigate judges an object: the median of the last `window` scores, a frame without the
class counting as zero (and so does a window not yet full), must reach `threshold`. Smoke
needs most of a window to be seen, and seen well: haze the model scores 0.3-0.6 for three
frames running on a street is not smoke; a fire the model holds at 0.6-0.8 is."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vision.detector import Detections
from vision.events import Box, Event


@dataclass(frozen=True, slots=True)
class FireConfig:
    window: int = 6  # fire-model frames remembered per class
    threshold: float = 0.4  # median score over the window (misses as zero) before an event
    min_score: float = 0.3  # a detection below this does not count as a hit
    interval_s: float = 1.0  # the fire model runs at most this often per camera


@dataclass
class _History:
    scores: deque[float]
    reported: bool = False


@dataclass
class FireSmoke:
    """One camera's fire and smoke judgement; `update` takes each fire-model frame."""

    names: dict[int, str]
    config: FireConfig = field(default_factory=FireConfig)
    last_run: float = float("-inf")

    def __post_init__(self) -> None:
        self.history = {
            label: _History(deque(maxlen=self.config.window)) for label in ("fire", "smoke")
        }

    def due(self, ts: float) -> bool:
        return ts - self.last_run >= self.config.interval_s

    def update(self, ts: float, dets: Detections, shape: tuple[int, int]) -> list[Event]:
        self.last_run = ts
        height, width = shape
        events = []
        for label, history in self.history.items():
            picked = [i for i in range(len(dets)) if self.names.get(int(dets.cls[i])) == label]
            best = max(picked, key=lambda i: float(dets.conf[i]), default=None)
            history.scores.append(float(dets.conf[best]) if best is not None else 0.0)
            hits = [s for s in history.scores if s >= self.config.min_score]
            if not hits:
                history.reported = False  # a whole window without it: the episode is over
                continue
            median = _median_of_window(history.scores, self.config.window)
            if history.reported or median < self.config.threshold or best is None:
                continue
            history.reported = True
            x1, y1, x2, y2 = (float(v) for v in dets.xyxy[best])
            box: Box = (x1 / width, y1 / height, x2 / width, y2 / height)
            marks = [
                (_norm(dets, i, width, height), f"{label} {float(dets.conf[i]):.2f}")
                for i in picked
            ]
            events.append(Event(label, ts, confidence=median, bbox=box, marks=marks))
        return events


def _median_of_window(scores: deque[float], window: int) -> float:
    padded = sorted([0.0] * (window - len(scores)) + list(scores))
    middle = len(padded) // 2
    return padded[middle] if len(padded) % 2 else (padded[middle - 1] + padded[middle]) / 2


def _norm(dets: Detections, i: int, width: int, height: int) -> Box:
    x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
    return (x1 / width, y1 / height, x2 / width, y2 / height)
