"""Where the real models and clips are (../shared), and cameras built on them for tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.cameras import camera as camera  # the tests' cameras, beside their clips

MEDIA = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media"))
YOLO = os.environ.get("SB_YOLO_MODEL", "")
FIRE = os.environ.get("SB_FIRE_MODEL", "")
POSE = os.environ.get("SB_POSE_MODEL", "")


def require_media() -> None:
    """Skip loudly when the shared models or clips are not beside the checkout."""
    missing = [name for name, path in (("SB_YOLO_MODEL", YOLO), ("SB_FIRE_MODEL", FIRE),
               ("SB_POSE_MODEL", POSE)) if not path or not Path(path).exists()]  # fmt: skip
    if not MEDIA.is_dir():
        missing.append(f"SB_TEST_MEDIA_DIR ({MEDIA})")
    if missing:
        pytest.skip(f"VISION TESTS SKIPPED: real models/clips not found: {', '.join(missing)}")


def replay(clip: str) -> str:
    return f"file://{(MEDIA / clip).resolve()}?realtime=0"


WALKWAY = [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]  # the zebra crossing, near the camera
OFF_WALKWAY = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.15], [0.0, 0.15]]  # buildings at the top left


def still_clip(tmp: Path, name: str, draw: Callable[[np.ndarray, int], None] | None = None) -> Path:
    """Six seconds of one real frame (the fire clip's first) at 10 fps, as a parked camera on
    an empty yard sees it; `draw(frame, n)` may mark each frame (a clock, say)."""
    cap = cv2.VideoCapture(str(MEDIA / "fire_smoke_cctv.mp4"))
    ok, frame = cap.read()
    cap.release()
    assert ok
    path = tmp / name
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, frame.shape[1::-1])
    for n in range(60):
        shown = frame.copy()
        if draw is not None:
            draw(shown, n)
        writer.write(shown)
    writer.release()
    return path
