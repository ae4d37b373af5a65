"""Fire and smoke from a dedicated detector, judged over a window of time, not one frame.

While anything the model calls fire or smoke is in view (a candidate: a score of at least
`min_score` within the last `window_s`), the pipeline runs the fire model on every analysed
frame; otherwise at most every `interval_s`. A label is reported when, over the runs of its
last `window_s` (`smoke_window_s` for smoke), at least `min_runs` ran, most of them saw it,
and the mean score, a run that missed counting as zero, reaches `threshold`: at 1 fps flames
the model holds at 0.5-0.8 are reported on their second frame, within 2 s of showing.

Smoke must also change: a real plume grows, drifts or churns against a still background. A
grey floor, fog or a wall the model scores as smoke stays as it was. So the pixels inside the
smoke's box must differ between the window's first run and now by `min_change` grey levels on
average, and by `stand_out` times what changed outside the box; or the box must have grown by
`grown` meanwhile, with the pixels inside changing too. Either way the view around it must be
still (at most `still` grey levels of change): when the camera pans or zooms everything
changes, and nothing can be told. Smoke needs `smoke_runs` runs in its window, so it is seen
changing. What the detector tracks (people walking over a grey floor, someone at a desk, a
car) is left out of both sides of the comparison: they change the view, not the smoke; where
they cover all but `min_clear` of the box, nothing can be told either.

The event's confidence is the mean score of the detections over the deciding window: what the
model thought of the episode, not of one frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.detector import Detections
from vision.events import Box, Event

THUMB = (96, 54)  # frames are compared at this size: noise averages out, cost stays small


@dataclass(frozen=True, slots=True)
class FireConfig:
    window_s: float = 2.0  # fire is decided over the runs of the last this long
    smoke_window_s: float = 3.0  # smoke over this long: long enough to see it change
    threshold: float = 0.4  # mean score over the window (misses as zero) before an event
    min_score: float = 0.3  # a detection below this does not count as a hit
    min_runs: int = 2  # runs in the window before anything is decided
    interval_s: float = 1.0  # the fire model runs at most this often with no candidate
    clear_s: float = 6.0  # an episode ends after this long without a hit
    min_change: float = 4.0  # mean grey-level change inside a smoke box across its window
    stand_out: float = 1.5  # ... and this many times the change outside it
    grown: float = 1.3  # or the smoke's box grew by this factor (area)
    still: float = 12.0  # the view outside the smoke changing more than this: a camera moving
    smoke_runs: int = 3  # runs smoke needs in its window (it must be seen changing)
    min_clear: float = 0.25  # share of the smoke's box clear of tracked objects to judge it


@dataclass(slots=True)
class _Run:
    """One fire-model run, as one label's history keeps it."""

    ts: float
    score: float  # the best detection of the label, 0 without one
    box: Box | None
    thumb: np.ndarray | None  # the frame, grey, at THUMB size
    clear: np.ndarray | None = None  # THUMB-size mask of what no tracked object covers


@dataclass
class _History:
    runs: deque[_Run] = field(default_factory=deque)
    last_hit: float = float("-inf")
    reported: bool = False


@dataclass
class FireSmoke:
    """One camera's fire and smoke judgement; `update` takes each fire-model frame."""

    names: dict[int, str]
    config: FireConfig = field(default_factory=FireConfig)
    last_run: float = float("-inf")

    def __post_init__(self) -> None:
        self.history = {label: _History() for label in ("fire", "smoke")}

    def candidate(self, ts: float) -> bool:
        """Something the model took for fire or smoke was seen within the window."""
        window = max(self.config.window_s, self.config.smoke_window_s)
        return any(ts - h.last_hit <= window for h in self.history.values())

    def due(self, ts: float) -> bool:
        return self.candidate(ts) or ts - self.last_run >= self.config.interval_s

    def update(
        self,
        ts: float,
        dets: Detections,
        shape: tuple[int, int],
        image: np.ndarray | None = None,
        objects: Sequence[Box] = (),
    ) -> list[Event]:
        """Judge one fire-model run; `objects` are the boxes (normalised) of what the detector
        tracks in this frame, left out of the smoke's change test."""
        self.last_run = ts
        thumb = _thumb(image) if image is not None else None
        clear = _clear_of(objects, thumb.shape) if thumb is not None else None
        events = []
        for label, history in self.history.items():
            picked = [i for i in range(len(dets)) if self.names.get(int(dets.cls[i])) == label]
            best = max(picked, key=lambda i: float(dets.conf[i]), default=None)
            score = float(dets.conf[best]) if best is not None else 0.0
            box = _norm(dets, best, shape) if best is not None else None
            event = self._judge(label, history, _Run(ts, score, box, thumb, clear))
            if event is not None:
                event.marks = [
                    (_norm(dets, i, shape), f"{label} {float(dets.conf[i]):.2f}") for i in picked
                ]
                events.append(event)
        return events

    def _judge(self, label: str, history: _History, run: _Run) -> Event | None:
        config = self.config
        window = config.smoke_window_s if label == "smoke" else config.window_s
        history.runs.append(run)
        while history.runs and run.ts - history.runs[0].ts >= window:
            history.runs.popleft()
        if run.score >= config.min_score:
            history.last_hit = run.ts
        elif run.ts - history.last_hit > config.clear_s:
            history.reported = False  # long enough without it: the episode is over
        runs = list(history.runs)
        hits = [r for r in runs if r.score >= config.min_score]
        needed = config.smoke_runs if label == "smoke" else config.min_runs
        if history.reported or run.box is None or len(runs) < needed:
            return None
        mean = sum(r.score if r.score >= config.min_score else 0.0 for r in runs) / len(runs)
        if 2 * len(hits) <= len(runs) or mean < config.threshold:
            return None
        if label == "smoke" and not self._changing(hits):
            return None
        history.reported = True
        confidence = sum(r.score for r in hits) / len(hits)
        return Event(label, run.ts, confidence=confidence, bbox=run.box)

    def _changing(self, hits: list[_Run]) -> bool:
        """Whether smoke seen in these runs moved, grew or churned against the rest of the
        view (see the module's doc)."""
        first, last = hits[0], hits[-1]
        if first.thumb is None or last.thumb is None or last.box is None or first is last:
            return False
        assert first.box is not None
        box = _mask(last.box, last.thumb.shape) | _mask(first.box, last.thumb.shape)
        clear = np.ones(box.shape, bool)
        for run in (first, last):
            clear &= run.clear if run.clear is not None else True
        inside, outside = box & clear, ~box & clear
        if inside.sum() < self.config.min_clear * box.sum():
            return False  # tracked objects fill the box: what changed there is theirs
        diff = np.abs(last.thumb.astype(np.float32) - first.thumb.astype(np.float32))
        change_in = float(diff[inside].mean())
        change_out = float(diff[outside].mean()) if outside.any() else 0.0
        if change_in < self.config.min_change:
            return False
        if change_out > self.config.still:
            return False  # the whole view moves (a camera panning, zooming): nothing to judge
        grew = _area(last.box) >= self.config.grown * _area(first.box)
        return grew or change_in >= self.config.stand_out * change_out


def _thumb(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return np.asarray(cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA))


def _mask(box: Box, shape: tuple[int, ...]) -> np.ndarray:
    height, width = shape[:2]
    mask = np.zeros((height, width), bool)
    x1, y1 = int(box[0] * width), int(box[1] * height)
    x2, y2 = max(x1 + 1, round(box[2] * width)), max(y1 + 1, round(box[3] * height))
    mask[y1:y2, x1:x2] = True
    return mask


def _clear_of(objects: Sequence[Box], shape: tuple[int, ...]) -> np.ndarray:
    clear = np.ones(shape[:2], bool)
    for box in objects:
        clear &= ~_mask(box, shape)
    return clear


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _norm(dets: Detections, i: int, shape: tuple[int, int]) -> Box:
    height, width = shape
    x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
    return (x1 / width, y1 / height, x2 / width, y2 / height)
