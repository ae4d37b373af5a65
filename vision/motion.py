"""Cheap motion detection on a small grey frame: whether the detector must run (as in Frigate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from devices.camera_settings import Mask
from vision.masks import raster
from vision.shrink import shrink

HEIGHT = 120  # rows of the analysed thumbnail; motion does not need more
_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True, slots=True)
class MotionConfig:
    threshold: int = 25  # grey-level change that counts as a moving pixel
    contour_area: int = 12  # smallest moving blob, in thumbnail pixels
    alpha: float = 0.1  # how fast the background follows the scene
    recalibrate: float = 0.6  # above this moving fraction (light switched, camera moved) relearn


class MotionDetector:
    """Keeps a running-average background; `update` says what fraction of the frame moved.
    `masks`: where motion never counts (an on-screen clock would keep the detector busy)."""

    def __init__(self, config: MotionConfig | None = None, masks: Sequence[Mask] = ()) -> None:
        self.config = config or MotionConfig()
        self.masks = list(masks)
        self._background: np.ndarray | None = None
        self._keep: np.ndarray | None = None
        self.boxes: list[tuple[int, int, int, int]] = []  # the latest moving blobs, in pixels

    def update(self, image: np.ndarray) -> float:
        """Fraction of the frame (0..1) covered by moving blobs; 1.0 for the first frame."""
        grey = _thumbnail(image)
        self.boxes = []
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            self._keep = raster(self.masks, *grey.shape)
            return 1.0
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        if self._keep is not None:
            diff = cv2.bitwise_and(diff, self._keep)
        _, mask = cv2.threshold(diff, self.config.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask, _KERNEL, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        blobs = [c for c in contours if cv2.contourArea(c) >= self.config.contour_area]
        moving = sum(cv2.contourArea(c) for c in blobs)
        scale = image.shape[0] / grey.shape[0]
        self.boxes = [_scaled(cv2.boundingRect(c), scale) for c in blobs]
        fraction = float(moving) / float(grey.size)
        if fraction > self.config.recalibrate:
            self._background = grey.astype(np.float32)
        else:
            cv2.accumulateWeighted(grey, self._background, self.config.alpha)
        return fraction


def _scaled(rect: Sequence[int], scale: float) -> tuple[int, int, int, int]:
    x, y, w, h = rect
    return (round(x * scale), round(y * scale), round((x + w) * scale), round((y + h) * scale))


def _thumbnail(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * HEIGHT / height)), HEIGHT)
    grey = cv2.cvtColor(shrink(image, size), cv2.COLOR_BGR2GRAY)
    return cv2.GaussianBlur(grey, (3, 3), 0)
