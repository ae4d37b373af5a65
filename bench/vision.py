"""Vision throughput on the real clips: the naive Ultralytics loop against Shaobing's engine.

    python -m bench.vision [--frames 240] [--device cpu|cuda]

(a) naive: `model.track` on every frame, one camera at a time;
(b) Shaobing: the engine with motion gating and frames of all cameras batched per step;
both on the same frames, in the same process, on a busy set (the shared clips) and on a still
scene (a real frame held still, as most community cameras see most of the day). Also prints the
decode cost per stream and how many cameras at 2 fps the engine sustains. Needs SB_YOLO_MODEL
and SB_TEST_MEDIA_DIR (set by .ci/run from ../shared).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.cameras import camera
from vision.detector import Detector
from vision.pipeline import Engine, Gating, Models

CLIPS = [
    "pedestrians_crosswalk.mp4",
    "pedestrians_overhead.avi",
    "fire_smoke_cctv.mp4",
    "fall_indoor.mp4",
]


def read_frames(path: Path, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def still_clip(media: Path, frames: int, folder: Path) -> Path:
    first = read_frames(media / "fire_smoke_cctv.mp4", 1)[0]
    path = folder / "still.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, first.shape[1::-1])
    for _ in range(frames):
        writer.write(first)
    writer.release()
    return path


def decode_cost(path: Path, limit: int) -> tuple[float, float]:
    """Milliseconds per frame to decode and convert (read) and to decode only (grab)."""
    out = []
    for method in ("read", "grab"):
        cap = cv2.VideoCapture(str(path))
        started, n = time.perf_counter(), 0
        while n < limit and (cap.read()[0] if method == "read" else cap.grab()):
            n += 1
        out.append((time.perf_counter() - started) / max(n, 1) * 1000)
        cap.release()
    return out[0], out[1]


def naive(model_path: str, clips: list[Path], limit: int, device: str) -> tuple[int, float]:
    from ultralytics.models import YOLO

    frames_done, started = 0, time.perf_counter()
    for clip in clips:
        model = YOLO(model_path, task="detect")  # a fresh tracker per camera
        for frame in read_frames(clip, limit):
            model.track(frame, persist=True, tracker="bytetrack.yaml", verbose=False,
                        device=device)  # fmt: skip
            frames_done += 1
    return frames_done, time.perf_counter() - started


def shaobing(detector: Detector, clips: list[Path], limit: int) -> tuple[int, int, float]:
    """(analysed frames, detector frames, seconds) with every frame of every clip analysed."""
    engine = Engine(Models(detector), Gating())
    for i, clip in enumerate(clips):
        native = cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS) or 25.0
        engine.add(camera(f"B{i}", f"file://{clip}?realtime=0", fps=min(30.0, float(native))))
    started, analysed = time.perf_counter(), 0
    while not engine.finished and analysed < limit * len(clips):
        frames, _ = engine.step()
        analysed += frames
    seconds = time.perf_counter() - started
    detected = sum(p.counters.detected for p in engine.pipelines.values())
    engine.close()
    return analysed, detected, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=240, help="frames per clip")
    parser.add_argument("--device", default=os.environ.get("SB_VISION_DEVICE", "cpu"))
    args = parser.parse_args()
    media = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media")).resolve()
    model = os.environ["SB_YOLO_MODEL"]
    detector = Detector(model, device=args.device)
    detector.detect([read_frames(media / CLIPS[0], 1)[0]])  # warm up
    print(f"model {model} on {args.device}; {args.frames} frames per clip; cores {os.cpu_count()}")

    for clip in CLIPS:
        read_ms, grab_ms = decode_cost(media / clip, args.frames)
        print(
            f"decode  {clip:28s} read {read_ms:5.2f} ms/frame   grab only {grab_ms:5.2f} ms/frame"
        )

    with tempfile.TemporaryDirectory() as tmp:
        scenes = {
            "busy (4 shared clips)": [media / c for c in CLIPS],
            "still (1 camera, static view)": [still_clip(media, args.frames, Path(tmp))],
        }
        for name, clips in scenes.items():
            n_frames, naive_s = naive(model, clips, args.frames, args.device)
            analysed, detected, ours_s = shaobing(detector, clips, args.frames)
            naive_fps, ours_fps = n_frames / naive_s, analysed / ours_s
            print(f"\n{name}")
            print(f"  (a) naive model.track, one camera at a time: {naive_fps:7.1f} frames/s")
            print(f"  (b) shaobing engine, gated + batched:        {ours_fps:7.1f} frames/s"
                  f"  (detector ran on {detected}/{analysed} frames)")  # fmt: skip
            print(f"      ratio {ours_fps / naive_fps:.2f}x;"
                  f" cameras sustained at 2 fps: {int(ours_fps // 2)}")  # fmt: skip


if __name__ == "__main__":
    main()
