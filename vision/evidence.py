"""Evidence pictures: the frame with the boxes and zone drawn, written by content hash."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.events import Event

MAX_WIDTH = 1280
JPEG_QUALITY = 85
BOX_COLOUR = (0, 0, 255)  # BGR red
ZONE_COLOUR = (0, 200, 255)  # amber


@dataclass(frozen=True, slots=True)
class Picture:
    id: str  # the first 32 hex digits of the JPEG's sha256
    jpeg: bytes
    width: int
    height: int


def render(image: np.ndarray, event: Event) -> Picture:
    """Draw the event's zone and boxes on a copy of the frame and encode it."""
    height, width = image.shape[:2]
    if width > MAX_WIDTH:
        height, width = round(height * MAX_WIDTH / width), MAX_WIDTH
        canvas = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    else:
        canvas = image.copy()
    thickness = max(2, width // 400)
    if event.outline:
        points = np.array([[x * width, y * height] for x, y in event.outline], np.int32)
        cv2.polylines(canvas, [points], len(points) > 2, ZONE_COLOUR, thickness)
    for (x1, y1, x2, y2), label in event.marks:
        top_left = (round(x1 * width), round(y1 * height))
        cv2.rectangle(
            canvas, top_left, (round(x2 * width), round(y2 * height)), BOX_COLOUR, thickness
        )
        cv2.putText(
            canvas,
            label,
            (top_left[0], max(12, top_left[1] - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            BOX_COLOUR,
            1,
            cv2.LINE_AA,
        )
    ok, buffer = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    jpeg = buffer.tobytes()
    return Picture(hashlib.sha256(jpeg).hexdigest()[:32], jpeg, width, height)


def relative_path(evidence_id: str) -> Path:
    return Path("evidence") / evidence_id[:2] / f"{evidence_id}.jpg"


def write_file(data_dir: Path, picture: Picture) -> Path:
    """Write the JPEG once (same content, same name) atomically; returns its relative path."""
    relative = relative_path(picture.id)
    target = data_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(picture.jpeg)
        partial.replace(target)
    return relative
