"""Clips encoded here as cameras send them: H.264 at a chosen keyframe spacing, for the tests
and benches of decoding (the shared clips' keyframes come only every 2.6-10 s)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import cv2
import numpy as np


def h264(frames: Iterable[np.ndarray], path: Path, *, fps: int = 25, gop: int = 50,
         bframes: int = 0) -> Path:  # fmt: skip
    """BGR frames as an H.264 .mp4 with a keyframe every `gop` frames (a camera's "I-frame
    interval"; 50 at 25 fps is the common default) and `bframes` B-frames between others."""
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": str(bframes),
               "preset": "ultrafast"}  # fmt: skip
    with av.open(str(path), "w") as out:
        stream: av.VideoStream | None = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=fps, options=options)
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        if stream is not None:
            out.mux(stream.encode(None))
    return path


def frames_of(clip: Path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a clip (fewer if it is shorter)."""
    cap = cv2.VideoCapture(str(clip))
    found: list[np.ndarray] = []
    while len(found) < count:
        ok, frame = cap.read()
        if not ok:
            break
        found.append(frame)
    cap.release()
    return found
