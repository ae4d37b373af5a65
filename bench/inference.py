"""Detector throughput by batch size: Ultralytics' `predict` against the tensor path.

    python -m bench.inference [--model PATH] [--device cpu|cuda] [--batches 1,4,16]
                              [--seconds 5]

For each batch size, decoded frames (the shared clips, 640x360 and 1280x720, cycled) to
detections in frame pixels: (a) `predict` on a list of that many frames, (b) the tensor path
(vision.inference), with its stages apart (letterbox on the device, forward pass, one batched
suppression and the copy back) and (c) the forward pass alone on a ready batch. `--model`
defaults to SB_YOLO_MODEL; `yolov8n.yaml` builds an untrained YOLOv8n (throughput only, for a
machine with no weights, such as a GPU box: scripts/gpu_bench.sh).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.clips import frames_of
from vision.detector import Detector
from vision.inference import TensorDetector, decode, letterbox

CLIPS = ["pedestrians_crosswalk.mp4", "pedestrians_overhead.avi", "fire_smoke_cctv.mp4",
         "fall_indoor.mp4"]  # fmt: skip


def frames(media: Path, per_clip: int = 16) -> list[np.ndarray]:
    """Frames of the shared clips; where they are not at hand (a GPU machine), noise frames
    at the clips' sizes stand in (only throughput is measured)."""
    if not media.is_dir():
        rng = np.random.default_rng(0)
        sizes = [(360, 640), (720, 1280)] * (2 * per_clip)
        return [rng.integers(0, 255, (h, w, 3), np.uint8) for h, w in sizes]
    return [frame for clip in CLIPS for frame in frames_of(media / clip, per_clip)]


def rate(step: Callable[[], object], images: int, seconds: float) -> float:
    """Images a second over repeated steps of `images` each (after one warm-up step)."""
    step()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        done += images
    sync()
    return done / (time.perf_counter() - started)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def model_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every detector bench takes: the model, the device, how long to measure."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--model", default=os.environ.get("SB_YOLO_MODEL", "yolov8n.yaml"))
    parser.add_argument("--device", default=os.environ.get("SB_VISION_DEVICE", "cpu"))
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    return parser


def main() -> None:
    parser = model_arguments(__doc__)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--no-predict", action="store_true", help="skip (a)")
    args = parser.parse_args()
    media = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media")).resolve()
    pool = frames(media)
    ours = TensorDetector(args.model, device=args.device)
    theirs = None if args.no_predict else Detector(args.model, device=args.device)
    device = torch.device(args.device)
    print(f"model {args.model} on {args.device}"
          f" ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'});"
          f" cores {os.cpu_count()}; images/s, decoded frame to detections")  # fmt: skip
    print(f"{'batch':>5s} {'predict':>9s} {'tensor':>9s} {'ratio':>6s}"
          f" {'letterbox':>10s} {'forward':>9s} {'decode':>8s}")  # fmt: skip
    for size in (int(b) for b in args.batches.split(",")):
        batch = [pool[i % len(pool)] for i in range(size)]
        predicted = rate(partial(theirs.detect, batch), size, args.seconds) if theirs else 0.0
        tensor = rate(partial(ours.detect, batch), size, args.seconds)
        shape = (ours.imgsz, device, ours.half, ours.runner.stride, ours.staging)
        ready, wheres = letterbox(batch, *shape)
        raw = ours.runner(ready)
        boxed = rate(partial(letterbox, batch, *shape), size, 1.0)
        forward = rate(partial(ours.runner, ready), size, args.seconds)
        suppress = partial(decode, raw, wheres, conf=ours.conf, iou=ours.iou)
        decoded = rate(suppress, size, 1.0)
        ratio = f"{tensor / predicted:5.2f}x" if predicted else "  -"
        print(f"{size:5d} {predicted:9.1f} {tensor:9.1f} {ratio:>6s}"
              f" {boxed:10.1f} {forward:9.1f} {decoded:8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
