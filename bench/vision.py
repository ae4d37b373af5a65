"""Vision cost per camera on the real clips: the naive Ultralytics loop against Shaobing's engine,
with every frame of every stream decoded at the stream's own rate.

    python -m bench.vision [--seconds 12] [--fps 1,2] [--device cpu|cuda] [--size 1920x1080]

For a busy set (the four shared clips, keyframes every 2.6-10 s) and a still scene (a real
frame held still, as most community cameras see most of the day, encoded as H.264 with a
keyframe every 2 s, the usual camera default), at each analysis rate:
(a) naive: each stream read frame by frame with OpenCV (every frame decoded and converted) and
    `model.track` on every frame due at that rate, one camera at a time;
(b) Shaobing: the engine (motion gating, regions, the low-rate tracker, all cameras' crops
    batched per step, the zones of bench/expected_events.toml), its streams replayed through
    vision.decoding (every packet demuxed, only those a due frame needs decoded), CPU per
    analysed frame split by stage (decode, motion, detect, track, analytics, evidence).
With `--size`, every clip is first scaled to that size and encoded as H.264 with a keyframe
every 2 s, as a 1080p camera's main stream would come.
Both print CPU seconds per camera-second of video and the cameras this machine's cores sustain
at that rate; the ratio is (a)'s CPU over (b)'s. Needs SB_YOLO_MODEL and SB_TEST_MEDIA_DIR
(set by .ci/run from ../shared).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2

from bench.cameras import camera
from bench.clips import frames_of, h264
from bench.vision_quality import expectations
from vision.detector import Detector
from vision.pipeline import STAGES, Analyser, Gating, Models

CLIPS = [
    "pedestrians_crosswalk.mp4",
    "pedestrians_overhead.avi",
    "fire_smoke_cctv.mp4",
    "fall_indoor.mp4",
]


def native_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    cap.release()
    return fps


def still_clip(media: Path, seconds: float, folder: Path) -> Path:
    """A real frame (the fire clip's first, an empty yard) held for `seconds` at 25 fps, as
    H.264 with a keyframe every 2 s."""
    [first] = frames_of(media / "fire_smoke_cctv.mp4", 1)
    return h264([first] * round(seconds * 25), folder / "still.mp4", fps=25, gop=50)


def scaled(clips: list[Path], size: str, seconds: float, folder: Path) -> list[Path]:
    """Each clip's first `seconds` at `size` (WxH), as H.264 with a keyframe every 2 s."""
    width, height = (int(v) for v in size.split("x"))
    folder.mkdir()
    found = []
    for clip in clips:
        fps = round(native_fps(clip))
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
                  for f in frames_of(clip, round(seconds * fps))]  # fmt: skip
        found.append(h264(frames, folder / clip.name, fps=fps, gop=2 * fps))
    return found


def naive(model_path: str, clips: list[Path], fps: float, seconds: float,
          device: str) -> tuple[float, float]:  # fmt: skip
    """(CPU seconds, seconds of video) for `model.track` on every frame due at `fps`."""
    from ultralytics.models import YOLO

    cpu = video = 0.0
    for clip in clips:
        model = YOLO(model_path, task="detect")  # a fresh tracker per camera
        native = native_fps(clip)
        step = max(1, round(native / fps))
        cap = cv2.VideoCapture(str(clip))
        ok, first = cap.read()
        model.predict(first, verbose=False, device=device)  # loading and warming up is not
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # what a camera costs once it runs
        started, index = time.process_time(), 0
        while index < seconds * native:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                model.track(frame, persist=True, tracker="bytetrack.yaml", verbose=False,
                            device=device)  # fmt: skip
            index += 1
        cpu += time.process_time() - started
        video += index / native
        cap.release()
    return cpu, video


def shaobing(detector: Detector, clips: list[Path], fps: float,
             seconds: float) -> tuple[dict[str, float], int, int, float]:  # fmt: skip
    """(CPU seconds per stage, analysed frames, detector frames, seconds of video)."""
    engine = Analyser(Models(detector), Gating())
    zones = {truth.file: truth.zones() for truth in expectations().values()}
    for i, clip in enumerate(clips):
        url = f"file://{clip}?realtime=0"
        engine.add(camera(f"B{i}", url, fps=fps, zones=zones.get(clip.name, [])))
    analysed = detected = 0
    video = 0.0
    while engine.pipelines:
        analysed += engine.step()[0]
        for camera_id, pipeline in list(engine.pipelines.items()):
            if pipeline.source.state == "ended" or pipeline.counters.analysed >= seconds * fps:
                detected += pipeline.counters.detected
                video += pipeline.counters.analysed / fps
                engine.remove(camera_id)  # every camera stops at the same length of video
    return engine.clock.seconds, analysed, detected, video


def report(name: str, fps: float, naive_run: tuple[float, float],
           ours: tuple[dict[str, float], int, int, float]) -> None:  # fmt: skip
    cores = os.cpu_count() or 1
    naive_cpu, naive_video = naive_run
    stages, analysed, detected, video = ours
    ours_cpu = sum(stages.values())
    per_frame = "  ".join(f"{s} {stages[s] / max(analysed, 1) * 1000:.1f}" for s in STAGES)
    naive_load, ours_load = naive_cpu / naive_video, ours_cpu / video  # CPU s per camera-second
    print(f"\n{name} at {fps:g} fps")
    print(f"  (a) naive model.track:  {naive_load:6.3f} CPU s per camera-second;"
          f" cameras sustained {cores / naive_load:6.1f}")  # fmt: skip
    print(
        f"  (b) shaobing engine:    {ours_load:6.3f} CPU s per camera-second;"
        f" cameras sustained {cores / ours_load:6.1f}; ratio {naive_load / ours_load:.2f}x"
    )
    print(f"      ms CPU per analysed frame: {per_frame}"
          f"  (detector ran on {detected} of {analysed})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="of video per camera")
    parser.add_argument("--fps", default="1,2", help="analysis rates")
    parser.add_argument("--device", default=os.environ.get("SB_VISION_DEVICE", "cpu"))
    parser.add_argument("--size", help="scale every clip to WxH first (H.264, 2 s keyframes)")
    args = parser.parse_args()
    media = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media")).resolve()
    model = os.environ["SB_YOLO_MODEL"]
    detector = Detector(model, device=args.device)
    detector.detect(frames_of(media / CLIPS[0], 1))  # warm up
    print(f"model {model} on {args.device}; up to {args.seconds:g} s of each stream,"
          f" every frame decoded; cores {os.cpu_count()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        scenes = {
            "busy (4 shared clips)": [media / c for c in CLIPS],
            "still (1 camera, static view)": [still_clip(media, args.seconds, Path(tmp))],
        }
        if args.size:
            scenes = {f"{name} at {args.size}": scaled(clips, args.size, args.seconds,
                                                       Path(tmp) / str(n))
                      for n, (name, clips) in enumerate(scenes.items())}  # fmt: skip
        for fps in (float(f) for f in args.fps.split(",")):
            for name, clips in scenes.items():
                ours = shaobing(detector, clips, fps, args.seconds)
                report(name, fps, naive(model, clips, fps, args.seconds, args.device), ours)


if __name__ == "__main__":
    main()
