"""What reading a camera costs: CPU per second of video, decoding only what is analysed
against decoding every frame, by keyframe spacing and analysis rate.

    python -m bench.decoding [--size 1920x1080] [--seconds 8] [--fps 1,2] [--decoder cpu]

A real frame sequence (the crosswalk clip, scaled to `--size`) is encoded as a camera sends
it, H.264 at 25 fps with a keyframe every 0.5, 2 and 10 s; each is then read (a) as OpenCV's
`grab` reads it, every frame decoded, the due ones converted, and (b) through vision.decoding
at each analysis rate, on the CPU or (`--decoder cuda`) on NVDEC. Printed: CPU ms per second
of video, the share of frames decoded, and the streams one core keeps up with.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2

from bench.clips import frames_of, h264
from vision.capture import open_source
from vision.decoding import DecoderChoice

GOPS = {"0.5 s": 12, "2 s": 50, "10 s": 250}


def opencv_cost(path: Path, fps: float) -> float:
    """CPU seconds to read the file as cv2's grab/retrieve loop does at `fps`."""
    cap = cv2.VideoCapture(str(path))
    step = max(1, round(25 / fps))
    started, index = time.process_time(), 0
    while cap.grab():
        if index % step == 0:
            cap.retrieve()
        index += 1
    cap.release()
    return time.process_time() - started


def ours_cost(path: Path, fps: float, decoder: DecoderChoice) -> tuple[float, float, str]:
    """(CPU seconds, share of frames decoded, what decoded) through vision.decoding."""
    source = open_source(f"file://{path}?realtime=0", fps, decoder)
    started = time.process_time()
    while source.next_frame() is not None:
        pass
    cpu = time.process_time() - started
    c = source.counters
    source.close()
    return cpu, c.frames_read / max(c.frames_read + c.frames_undecoded, 1), c.decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--fps", default="1,2")
    parser.add_argument("--decoder", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    media = Path(os.environ.get("SB_TEST_MEDIA_DIR", "../shared/media")).resolve()
    clip = frames_of(media / "pedestrians_crosswalk.mp4", 25 * args.seconds)
    pictures = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in clip]
    print(f"{width}x{height} H.264 at 25 fps, {args.seconds} s; cores {os.cpu_count()};"
          f" CPU ms per second of video (streams a core keeps up with)")  # fmt: skip
    print(f"{'keyframes':>9s} {'fps':>4s} {'every frame (OpenCV)':>21s} "
          f"{'only what is analysed':>22s} {'decoded':>8s} {'on':>5s}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for label, gop in GOPS.items():
            path = h264(pictures, Path(tmp) / f"g{gop}.mp4", fps=25, gop=gop)
            video = len(pictures) / 25
            for fps in (float(f) for f in args.fps.split(",")):
                full = opencv_cost(path, fps) / video
                ours, share, where = ours_cost(path, fps, args.decoder)
                ours /= video
                print(f"{label:>9s} {fps:4g} {full * 1000:9.1f} ({1 / full:6.1f} streams)"
                      f" {ours * 1000:9.1f} ({1 / max(ours, 1e-6):6.1f} streams)"
                      f" {share * 100:7.0f}% {where:>5s}")  # fmt: skip


if __name__ == "__main__":
    main()
