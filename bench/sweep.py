"""Camera-frames a second end to end, decoded frame to events, by batch size.

    python -m bench.sweep [--model PATH] [--device cpu|cuda] [--batches 1,8,32,128,256]
                          [--seconds 5] [--conf 0.25]

For each batch size B, B cameras each hand the engine one decoded frame per step (frames of
the shared clips, 640x360 and 1280x720, each camera walking through its own clip), and every
frame goes through all of what follows decoding: motion, regions, the detector over every
crop of every camera in one call, tracking, the zones of bench/expected_events.toml, events
and their pictures. The detector runs on every frame (no motion gating: this is the busy
case). Printed beside it, at the same batch: Ultralytics' batched `predict` and the raw
forward pass, in images a second. `--model yolov8n.yaml` builds an untrained network (a
machine without weights, such as a GPU box); it finds nothing (its class scores start near
1e-4), so tracking and analytics cost nothing there: the `boxes` column (a detector image's)
says which case a line is; `crops` is the detector images a frame needed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bench.cameras import camera
from bench.inference import frames, model_arguments, rate
from bench.vision_quality import expectations
from vision.capture import Frame
from vision.decoding import DecodeCounters
from vision.detector import Detections, Detector
from vision.inference import TensorDetector, letterbox
from vision.pipeline import Analyser, Gating, Models

WARM_STEPS = 8


@dataclass
class DecodedFrames:
    """A camera's source that hands out frames already decoded, one per step, in order."""

    pool: list[np.ndarray]
    start: int
    counters: DecodeCounters = field(default_factory=DecodeCounters)
    ts: float = field(default_factory=time.time)
    index: int = 0

    @property
    def state(self) -> str:
        return "live"

    def next_frame(self) -> Frame:
        self.index += 1
        self.ts += 0.5  # 2 fps of stream time
        return Frame(self.pool[(self.start + self.index) % len(self.pool)], self.ts)

    def changes(self) -> list[object]:
        return []

    def close(self) -> None:
        pass


class Counted:
    """The detector, counting the boxes it hands back (the load tracking works on)."""

    def __init__(self, inner: TensorDetector) -> None:
        self.inner, self.names, self.imgsz = inner, inner.names, inner.imgsz
        self.boxes = self.images = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        found = self.inner.detect(images)
        self.boxes += sum(len(d) for d in found)
        self.images += len(images)
        return found


def end_to_end(detector: Counted, pool: list[np.ndarray], cameras: int,
               seconds: float) -> tuple[float, int, dict[str, float]]:  # fmt: skip
    """(camera-frames a second through the engine with `cameras` cameras, frames, CPU
    seconds by stage)."""
    engine = Analyser(Models(detector), Gating(refresh_s=0.0))
    zones = [z for truth in expectations().values() for z in truth.zones()]
    for n in range(cameras):
        source = DecodedFrames(pool, start=n * len(pool) // cameras)  # the same mix for any B
        engine.add(camera(f"S{n}", "memory", fps=2, zones=zones), source)  # type: ignore[arg-type]
    for _ in range(WARM_STEPS):  # every camera past its first frames (a full-frame search)
        engine.step()
    engine.clock.seconds = dict.fromkeys(engine.clock.seconds, 0.0)
    detector.boxes = detector.images = 0
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        done += engine.step()[0]
    engine.close()
    return done / (time.perf_counter() - started), done, engine.clock.seconds


def main() -> None:
    parser = model_arguments(__doc__)
    parser.add_argument("--batches", default="1,4,16")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--no-predict", action="store_true", help="skip Ultralytics' predict")
    args = parser.parse_args()
    torch.manual_seed(0)  # an untrained network is the same one on every run
    media = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media")).resolve()
    pool = frames(media, per_clip=32)
    ours = Counted(TensorDetector(args.model, device=args.device, conf=args.conf))
    theirs = None if args.no_predict else Detector(args.model, device=args.device, conf=args.conf)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"model {args.model} on {args.device} ({name}); cores {os.cpu_count()};"
          f" conf {args.conf}; end to end = decoded frame to events")  # fmt: skip
    print(f"{'batch':>5s} {'end to end':>11s} {'crops':>6s} {'boxes':>6s} {'predict':>9s}"
          f" {'forward':>9s}  ms CPU per frame by stage")  # fmt: skip
    for size in (int(b) for b in args.batches.split(",")):
        e2e, done, stages = end_to_end(ours, pool, size, args.seconds)
        crops, boxes = ours.images / max(done, 1), ours.boxes / max(ours.images, 1)
        split = " ".join(f"{k} {v / max(done, 1) * 1000:.1f}" for k, v in stages.items())
        batch = [pool[i % len(pool)] for i in range(size)]
        predicted = rate(partial(theirs.detect, batch), size, args.seconds) if theirs else 0.0
        inner = ours.inner
        ready, _ = letterbox(batch, inner.imgsz, device, inner.half, inner.runner.stride,
                             inner.staging)  # fmt: skip
        forward = rate(partial(ours.inner.runner, ready), size, args.seconds)
        print(f"{size:5d} {e2e:11.1f} {crops:6.2f} {boxes:6.1f} {predicted:9.1f}"
              f" {forward:9.1f}  {split}")  # fmt: skip


if __name__ == "__main__":
    main()
