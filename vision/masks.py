"""A camera's masks (devices.camera_settings): polygons in 0..1 image coordinates, as pixel
masks for motion gating and as a filter on detections."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from devices.camera_settings import Mask
from vision.detector import Detections


def raster(masks: Sequence[Mask], height: int, width: int) -> np.ndarray | None:
    """255 where the image counts, 0 under a mask; None when there is no mask."""
    if not masks:
        return None
    keep = np.full((height, width), 255, np.uint8)
    for mask in masks:
        points = np.array([[x * width, y * height] for x, y in mask.polygon], np.int32)
        cv2.fillPoly(keep, [points], 0)
    return keep


def drop_masked(dets: Detections, masks: Sequence[Mask], height: int, width: int) -> Detections:
    """The detections whose foot (bottom centre, where an object stands) is outside every
    mask."""
    keep = raster(masks, height, width)
    if keep is None or len(dets) == 0:
        return dets
    feet_x = np.clip(((dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2).astype(int), 0, width - 1)
    feet_y = np.clip(dets.xyxy[:, 3].astype(int), 0, height - 1)
    chosen = keep[feet_y, feet_x] > 0
    return Detections(
        dets.xyxy[chosen],
        dets.conf[chosen],
        dets.cls[chosen],
        None if dets.keypoints is None else dets.keypoints[chosen],
    )
