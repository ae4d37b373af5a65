"""Tamper: the view covered, defocused or moved, judged from image statistics (no model).

The first frames teach the camera's normal sharpness and view; afterwards a frame is
- covered when it is nearly uniform for its brightness (a hand, a bag, paint, or the lens
  turned to a wall; a dark scene keeps its contrast),
- defocused when its sharpness (variance of the Laplacian relative to the frame's contrast,
  so that dusk is not a defocus) falls far below the normal level, which follows the day,
- moved when the edges of its slow background (people and cars fade out of it) no longer line
  up with the learnt view. The learnt view follows slow change only while the view is clearly
  the same, so a camera turned slowly or knocked aside is not learnt as normal.
A condition must hold for `hold_s` before it is reported, once per episode.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.events import Event
from vision.shrink import shrink

WIDTH = 160


@dataclass(frozen=True, slots=True)
class TamperConfig:
    learn_frames: int = 8
    covered_std: float = 12.0  # grey-level spread below which the view is blank
    defocus_ratio: float = 0.2  # sharpness below this fraction of normal is a defocus
    moved_similarity: float = 0.5  # edge correlation with the learnt view below this is a move
    same_view: float = 0.8  # the learnt view follows the scene only while this alike
    hold_s: float = 3.0
    background_alpha: float = 0.1  # how fast the background follows the frames
    relearn_alpha: float = 0.02  # the learnt view follows slow changes (light over the day)


@dataclass
class Tamper:
    config: TamperConfig = field(default_factory=TamperConfig)
    sharpness: list[float] = field(default_factory=list)
    reference: np.ndarray | None = None
    background: np.ndarray | None = None
    condition: str | None = None
    since: float = 0.0
    reported: bool = False

    def update(self, ts: float, image: np.ndarray) -> list[Event]:
        grey = _thumbnail(image)
        found = self._judge(grey)
        if found != self.condition:
            self.condition, self.since, self.reported = found, ts, False
        if found is None or self.reported or ts - self.since < self.config.hold_s:
            return []
        self.reported = True
        return [Event("tamper", ts, confidence=0.9, reason=found)]

    def _judge(self, grey: np.ndarray) -> str | None:
        spread = float(grey.std())
        if spread < self.config.covered_std * max(float(grey.mean()), 16.0) / 128.0:
            return "covered"  # judged against the light: a dark scene still has contrast
        # Sharpness relative to contrast, so that dusk (both fall together) is not a defocus.
        sharp = float(cv2.Laplacian(grey, cv2.CV_32F).var()) / max(spread**2, 1.0)
        if self.background is None:
            self.background = grey.astype(np.float32)
        cv2.accumulateWeighted(grey, self.background, self.config.background_alpha)
        edges = _edges(self.background)
        if len(self.sharpness) < self.config.learn_frames or self.reference is None:
            self.sharpness.append(sharp)
            self.reference = edges if self.reference is None else (self.reference + edges) / 2
            return None
        if sharp < self.config.defocus_ratio * statistics.median(self.sharpness):
            return "defocused"
        similarity = float(cv2.matchTemplate(edges, self.reference, cv2.TM_CCOEFF_NORMED)[0, 0])
        if similarity < self.config.moved_similarity:
            return "moved"
        if similarity >= self.config.same_view:  # a view on the move must not be learnt
            cv2.accumulateWeighted(edges, self.reference, self.config.relearn_alpha)
            self.sharpness.append(sharp)
            del self.sharpness[: -self.config.learn_frames * 4]  # normal follows the day
        return None


def _thumbnail(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    size = (WIDTH, max(1, round(height * WIDTH / width)))
    return cv2.cvtColor(shrink(image, size), cv2.COLOR_BGR2GRAY)


def _edges(grey: np.ndarray) -> np.ndarray:
    """A blurred gradient magnitude: where the view's structure is, tolerant of small jitter."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)  # grey may be float32 (the background) or uint8
    return np.asarray(cv2.GaussianBlur(cv2.magnitude(gx, gy), (9, 9), 0), np.float32)
