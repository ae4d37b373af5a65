"""Decoding only what is analysed: on clips encoded as cameras send them (H.264, keyframes
every 0.5-10 s, with and without B-frames), the frames taken are the frames a full decode
gives at those times, pixel for pixel, one per analysis interval, and the packets no taken
frame needs are never decoded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from bench.clips import frames_of, h264
from tests.vision_media import MEDIA, require_media
from vision.capture import Frame, FrameSource, open_source
from vision.decoding import cuda_decoding

pytestmark = pytest.mark.slow  # the lanes: docs/testing.md

FPS = 25
SECONDS = 8


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    require_media()
    return frames_of(MEDIA / "pedestrians_crosswalk.mp4", FPS * SECONDS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("gop")


def encoded(pictures: list[np.ndarray], folder: Path, gop: int, bframes: int) -> Path:
    path = folder / f"g{gop}b{bframes}.mp4"
    return path if path.exists() else h264(pictures, path, fps=FPS, gop=gop, bframes=bframes)


def every_frame(path: Path) -> dict[float, np.ndarray]:
    """A full decode: each frame by its time."""
    with av.open(str(path)) as container:
        return {round(float(f.time), 3): f.to_ndarray(format="bgr24")
                for f in container.decode(video=0)}  # fmt: skip


def drain(source: FrameSource) -> list[Frame]:
    frames = []
    while (frame := source.next_frame()) is not None:
        frames.append(frame)
    source.close()
    return frames


@pytest.mark.parametrize(
    ("gop", "bframes", "fps", "most_decoded"),
    [
        (12, 0, 1.0, 0.15),  # keyframes every 0.48 s, wanted every 1 s: keyframes only
        (12, 0, 2.0, 0.2),
        (50, 0, 1.0, 0.7),  # every 2 s (a camera's usual): half of each group, to the due frame
        (25, 2, 1.0, 0.25),  # B-frames: decoded out of order, still whole
        (250, 0, 2.0, 1.0),  # one keyframe in 10 s: everything up to each due frame
    ],
)
def test_only_the_packets_a_due_frame_needs_are_decoded(
    pictures: list[np.ndarray], clips: Path, gop: int, bframes: int, fps: float,
    most_decoded: float,
) -> None:  # fmt: skip
    path = encoded(pictures, clips, gop, bframes)
    source = open_source(f"file://{path}?realtime=0", fps)
    frames = drain(source)
    started = source.started  # type: ignore[attr-defined]
    times = [round(f.ts - started, 3) for f in frames]
    gaps = np.diff(times)
    interval = 1 / fps
    assert len(frames) >= SECONDS * fps - 1
    assert gaps.min() >= 0.85 * interval and gaps.max() <= 1.5 * interval, times
    counters = source.counters
    total = counters.frames_read + counters.frames_undecoded
    assert total == len(pictures)  # every packet is either decoded or counted as left
    assert counters.frames_read <= most_decoded * total, (counters.frames_read, total)
    whole = every_frame(path)
    for frame, at in zip(frames, times, strict=True):
        assert np.array_equal(frame.image, whole[at]), at  # not a frame with references lost


def test_a_live_stream_decodes_only_what_is_analysed(
    pictures: list[np.ndarray], clips: Path
) -> None:
    """A file played at camera speed: frames come at the analysis rate, and most of the
    stream's packets are never decoded."""
    path = encoded(pictures, clips, 12, 0)
    source = open_source(f"file://{path}", 2)
    taken, deadline = [], time.monotonic() + 4.0
    while time.monotonic() < deadline:
        if (frame := source.next_frame()) is not None:
            taken.append(frame.ts)
        time.sleep(0.05)
    source.close()
    assert 6 <= len(taken) <= 10, taken
    counters = source.counters
    assert counters.frames_undecoded > 2 * counters.frames_read > 0
    assert counters.decoder == ("cuda" if cuda_decoding() else "cpu")


def test_decoding_on_cuda_where_asked_and_none_opens_reports_the_stream_lost(
    pictures: list[np.ndarray], clips: Path
) -> None:
    path = encoded(pictures, clips, 12, 0)
    source = open_source(f"file://{path}?realtime=0", 1, decoder="cuda")
    frames = drain(source)
    if cuda_decoding():  # a GPU machine: NVDEC gives the frames the CPU gives, near enough
        reference = drain(open_source(f"file://{path}?realtime=0", 1, decoder="cpu"))
        assert source.counters.decoder == "cuda" and len(frames) == len(reference)
        for ours, theirs in zip(frames, reference, strict=True):
            assert np.abs(ours.image.astype(int) - theirs.image).mean() < 2
        return
    assert frames == [] and source.state == "lost"
    [lost] = source.changes()
    assert lost.type == "stream_lost" and lost.reason and "CUDA" in lost.reason
    fallback = open_source(f"file://{path}?realtime=0", 1, decoder="auto")
    assert len(drain(fallback)) >= SECONDS - 1 and fallback.counters.decoder == "cpu"


def test_a_camera_that_restarts_its_clock_goes_on_being_analysed(
    pictures: list[np.ndarray], clips: Path
) -> None:
    """Two MPEG-TS recordings back to back, as a camera that rebooted mid-stream sends them:
    the timestamps jump back to zero, and frames keep coming at the analysis rate."""
    halves = [h264(pictures[:100], clips / f"part{n}.ts", fps=FPS, gop=12) for n in (1, 2)]
    joined = clips / "rebooted.ts"
    joined.write_bytes(b"".join(part.read_bytes() for part in halves))
    frames = drain(open_source(f"file://{joined}?realtime=0", 1))
    assert len(frames) >= 7, len(frames)  # 4 s before the reboot and 4 s after, at 1 fps
