"""A stream demuxed with PyAV, decoding only the packets that an analysed frame needs.

A camera sends 25 frames a second and the analyser wants one or two. Demuxing a packet costs
next to nothing; decoding it is most of a camera's CPU. A frame can be decoded only from its
group of pictures' keyframe on, so a frame is taken when it is due (one per analysis interval,
by stream time) and the rest of the group after it is dropped undecoded when the next keyframe
is close enough to serve the next due frame (within half an interval). Where keyframes come
at least as often as frames are wanted, a whole group can be dropped too, and only keyframes
are decoded: keyframe-only decoding, chosen per group from the keyframe spacing the stream
shows rather than set by hand. A frame comes a little late at worst (a keyframe may serve up
to a tenth of an interval early), never twice.

Decoding runs on NVDEC (FFmpeg's CUDA hwaccel) where a CUDA device opens and `auto` or `cuda`
asks for it; `auto` decodes on the CPU where none does, `cuda` reports the stream lost.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import av
import numpy as np
from av.codec.hwaccel import HWAccel, hwdevices_available

DecoderChoice = Literal["auto", "cpu", "cuda"]
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
KEY_HISTORY = 4  # keyframe spacings remembered; the longest of them is assumed next


class StreamError(Exception):
    """The stream cannot be opened or read; the message says why, for `stream_lost`."""


@dataclass(slots=True)
class DecodeCounters:
    frames_read: int = 0  # decoded from the stream
    frames_undecoded: int = 0  # packets dropped without decoding: frames nobody would see
    frames_dropped: int = 0  # converted but replaced by a newer one before the analyser came
    reconnects: int = 0
    decode_errors: int = 0  # packets the decoder refused: their frames are lost, not the stream
    decode_s: float = 0.0  # CPU time of the reading thread in demuxing, decoding, converting
    decoder: str = "cpu"  # what decodes the stream now: cpu or cuda


class Schedule:
    """Which frames the analyser wants, by stream time: the first, then one per interval."""

    def __init__(self, fps: float, native_fps: float) -> None:
        self.interval = 1.0 / fps
        self.slack = 0.5 / native_fps  # half a frame, for timestamps that jitter
        self.early = self.interval / 10  # a keyframe this early serves, and spares its group
        self.tolerance = self.interval / 2  # how late a due frame may come to spare decoding
        self.next_due = -math.inf
        self.last = -math.inf

    def due(self, t: float, keyframe: bool = False) -> bool:
        if t < self.last:  # time went back (a camera restarted its clock): start again
            self.next_due = self.last = -math.inf
        return t >= self.next_due - (self.early if keyframe else 0.0)

    def took(self, t: float) -> None:
        self.last = t
        self.next_due = t + self.interval - self.slack

    def can_wait_for(self, keyframe_at: float | None) -> bool:
        """Whether a keyframe at `keyframe_at` (None: not known yet) is soon enough to serve
        the next due frame, so that what comes before it need not be decoded."""
        return keyframe_at is not None and keyframe_at <= self.next_due + self.tolerance


class Keyframes:
    """Where keyframes fall: the spacing of the last few, and the latest one seen."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.spacings: deque[float] = deque(maxlen=KEY_HISTORY)

    def saw(self, t: float) -> None:
        if self.last is not None and t > self.last:
            self.spacings.append(t - self.last)
        elif self.last is not None:  # time went back: what was learnt is of another clock
            self.spacings.clear()
        self.last = t

    def next_expected(self) -> float | None:
        """When the next keyframe should come (the longest recent spacing after the last),
        or None until two have been seen."""
        if self.last is None or not self.spacings:
            return None
        return self.last + max(self.spacings)


class Stream:
    """One opened stream. `frames` yields (stream seconds, BGR image) for each due frame."""

    def __init__(self, target: str, decoder: DecoderChoice) -> None:
        self.container, self.decoder = _open(target, decoder)
        try:
            self.video = self.container.streams.video[0]
        except IndexError:
            self.container.close()
            raise StreamError("no video in the stream") from None
        rate = self.video.guessed_rate or self.video.average_rate
        fps = float(rate) if rate else 0.0
        self.native_fps = fps if 1.0 <= fps <= 240.0 else 25.0
        self.time_base = float(self.video.time_base or 1 / 90000)

    def close(self) -> None:
        self.container.close()

    def frames(
        self,
        schedule: Schedule,
        counters: DecodeCounters,
        pace: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Due frames until the stream ends (then returns) or fails (StreamError). `pace` is
        called with each packet's time before it is handled (a file played at camera speed).
        """
        counters.decoder = self.decoder
        keys = Keyframes()
        skipping = flushed = False
        resume_at = -math.inf  # after a flush, frames before the keyframe are not whole
        counted = 0.0  # stream time by frame count, for a stream without timestamps
        started = time.thread_time()
        for packet in self._packets():
            t = self._seconds(packet.pts if packet.pts is not None else packet.dts)
            if pace is not None and t is not None:
                counters.decode_s += time.thread_time() - started
                pace(t)
                started = time.thread_time()
            if packet.is_keyframe and t is not None:
                keys.saw(t)
                skipping = not schedule.due(t, keyframe=True) and schedule.can_wait_for(
                    keys.next_expected()
                )
                if not skipping and flushed:
                    self.video.codec_context.flush_buffers()
                    flushed, resume_at = False, t
            if skipping:
                counters.frames_undecoded += int(packet.size > 0)
                flushed = True
                continue
            counters.frames_read += int(packet.size > 0)  # the empty last packet only flushes
            for frame in self._decode(packet, counters):
                counted += 1 / self.native_fps
                at = self._seconds(frame.pts)
                at = at if at is not None else (t if t is not None else counted)
                if at < resume_at:
                    continue
                resume_at = -math.inf  # the keyframe is out: nothing after it lacks references
                if not schedule.due(at, keyframe=frame.key_frame):
                    continue
                schedule.took(at)
                image = frame.to_ndarray(format="bgr24")
                counters.decode_s += time.thread_time() - started
                yield at, image
                started = time.thread_time()
                skipping = schedule.can_wait_for(keys.next_expected())
        counters.decode_s += time.thread_time() - started

    def _packets(self) -> Iterator[Any]:
        try:
            yield from self.container.demux(self.video)
        except av.error.EOFError:
            return
        except (av.error.FFmpegError, OSError) as e:
            raise StreamError(f"read failed: {e}") from e

    def _decode(self, packet: Any, counters: DecodeCounters) -> list[Any]:
        try:
            return list(packet.decode())
        except av.error.InvalidDataError:
            counters.decode_errors += 1  # a damaged packet: its frame is lost, not the stream
            return []

    def _seconds(self, pts: int | None) -> float | None:
        return None if pts is None else pts * self.time_base


def _open(target: str, decoder: DecoderChoice) -> tuple[Any, str]:
    """The opened container and what decodes it (cpu or cuda)."""
    if decoder != "cpu" and cuda_decoding():
        return _container(target, HWAccel("cuda")), "cuda"
    if decoder == "cuda":
        raise StreamError("cannot decode on CUDA: no CUDA device opens")
    return _container(target, None), "cpu"


@functools.cache
def cuda_decoding() -> bool:
    """Whether FFmpeg can open a CUDA device to decode on (asked once per process)."""
    if "cuda" not in hwdevices_available():
        return False
    try:
        HWAccel("cuda").create(av.codec.Codec("h264", "r"))
    except av.error.FFmpegError:
        return False
    return True


def _container(target: str, hwaccel: HWAccel | None) -> Any:
    # RTSP over TCP: UDP loses packets on a busy network, and with them whole groups of frames.
    options = {"rtsp_transport": "tcp"} if target.startswith("rtsp") else {}
    try:
        return av.open(
            target, options=options, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S), hwaccel=hwaccel
        )
    except (av.error.FFmpegError, OSError) as e:
        raise StreamError(f"cannot open stream: {e}") from e
